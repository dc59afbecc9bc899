import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectAsync } from 'mqtt';
import { Mosquitto } from '../helpers/mosquitto.js';
import { MqttCollector } from '../helpers/mqtt-collector.js';
import { startCli } from '../helpers/cli.js';
import { colourImage, tempDir, writeColourModel } from '../helpers/fixtures.js';

// 1,000 fuzzed requests against the real daemon: random bytes, deep JSON, huge strings, wrong
// types, unknown commands. The daemon must stay up and answer every request.

/** Deterministic PRNG (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('command fuzzing', () => {
  let broker: Mosquitto;
  let config: string;

  beforeAll(async () => {
    broker = await Mosquitto.start();
    const dir = tempDir();
    const m = writeColourModel(join(dir, 'm'));
    const images = join(dir, 'img');
    mkdirSync(images);
    writeFileSync(join(images, 'a.jpg'), await colourImage('green'));
    config = join(dir, 'c.yaml');
    writeFileSync(
      config,
      `device_id: fz\nstate_dir: ${join(dir, 'state')}\nmodel: { path: ${m.model}, labels: ${m.labels}, execution_providers: [cpu] }\ncameras:\n  - id: cam\n    source: { type: directory, path: ${images}, fps: 5, loop: true }\nmqtt: { url: ${broker.url}, base_topic: fz }\ncommands: { max_payload_bytes: 4096 }\n`,
    );
  });

  afterAll(async () => {
    await broker?.stop();
  });

  it('survives 1,000 fuzzed requests and answers every one', async () => {
    const seed = 20261126;
    const rand = rng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const commands = ['snapshot', 'set', 'update-check', 'resume', 'classify', 'nope', 'x'.repeat(40), 'ÿ-bad', ''] as const;
    const junkValue = (): unknown =>
      pick([null, true, 12, -1e308, 'str', 'x'.repeat(Math.floor(rand() * 8000)), [], {}, [1, [2, [3]]], { camera: 'cam' }, { nested: { deeper: [null] } }]);
    const payload = (i: number): { body: Buffer; transaction: string | null } => {
      const transaction = `f${i}`;
      switch (Math.floor(rand() * 8)) {
        case 0:
          return { body: Buffer.from(Array.from({ length: Math.floor(rand() * 300) }, () => Math.floor(rand() * 256))), transaction: null };
        case 1:
          return { body: Buffer.from(`${'['.repeat(5000)}${']'.repeat(5000)}`), transaction: null };
        case 2:
          return { body: Buffer.from(JSON.stringify({ transaction, camera: 'x'.repeat(10_000) })), transaction: null }; // oversized
        case 3:
          return { body: Buffer.from(JSON.stringify({ transaction, top_k: junkValue(), min_score: junkValue() })), transaction };
        case 4:
          return { body: Buffer.from(JSON.stringify({ transaction, camera: junkValue(), timeout_ms: 100 })), transaction };
        case 5:
          return { body: Buffer.from(JSON.stringify({ transaction: junkValue() })), transaction: null };
        case 6:
          return { body: Buffer.from('{"transaction": "' + transaction + '", "camera": "cam"'), transaction: null }; // cut short
        default:
          return { body: Buffer.from(JSON.stringify({ transaction, camera: 'cam', top_k: 3, timeout_ms: 100 })), transaction };
      }
    };

    const sub = await MqttCollector.connect(broker.url, ['fz/fz/response/+', 'fz/fz/cam/prediction']);
    const daemon = startCli(['run', '--config', config]);
    const client = await connectAsync(broker.url, { clean: true });
    try {
      await sub.waitFor((m) => m.some((x) => x.topic === 'fz/fz/cam/prediction'), 30_000, 'daemon up');
      const sent: { command: string; transaction: string | null }[] = [];
      for (let i = 0; i < 1000; i++) {
        const command = pick(commands);
        const p = payload(i);
        // An oversized request is refused before its JSON (and transaction) is read.
        const transaction = p.body.length > 4096 ? null : p.transaction;
        // `request/` (an empty command) still matches request/+ and must be answered too.
        await client.publishAsync(`fz/fz/request/${command}`, p.body, { qos: 1 });
        sent.push({ command, transaction });
        if (i % 50 === 49) await new Promise((r) => setTimeout(r, 20));
      }
      const responses = () => sub.messages.filter((m) => m.topic.startsWith('fz/fz/response/'));
      await sub.waitFor(() => responses().length >= sent.length, 60_000, 'a response to every request');
      const withTx = sent.filter((s) => s.transaction !== null);
      const answered = new Set(responses().map((r) => String((r.json as { transaction: unknown }).transaction)));
      const missing = withTx.filter((s) => !answered.has(s.transaction!));
      console.log(`fuzz seed ${seed}: ${sent.length} requests, ${responses().length} responses, ${withTx.length} with a transaction, ${missing.length} unanswered`);
      expect(missing).toEqual([]);
      expect(responses().length).toBe(sent.length);
      expect(daemon.proc.exitCode).toBeNull();
      // Still classifying afterwards.
      const before = sub.on('fz/fz/cam/prediction').length;
      await sub.waitFor((m) => m.filter((x) => x.topic === 'fz/fz/cam/prediction').length > before + 2, 15_000, 'predictions after fuzzing');
    } finally {
      await client.endAsync(true);
      daemon.proc.kill('SIGTERM');
      const done = await daemon.finished;
      await sub.close();
      expect(done.code).toBe(0);
    }
  });

  it('with commands.enabled false, the daemon does not listen for requests at all', async () => {
    const off = config.replace(/\.yaml$/, '-off.yaml');
    writeFileSync(off, `${readFileSync(config, 'utf8').replace('commands: { max_payload_bytes: 4096 }', 'commands: { enabled: false }')}`);
    const sub = await MqttCollector.connect(broker.url, ['fz/fz/response/+', 'fz/fz/cam/prediction']);
    const daemon = startCli(['run', '--config', off]);
    const client = await connectAsync(broker.url, { clean: true });
    try {
      await sub.waitFor((m) => m.some((x) => x.topic === 'fz/fz/cam/prediction'), 30_000, 'daemon up');
      await client.publishAsync('fz/fz/request/snapshot', JSON.stringify({ transaction: 1, camera: 'cam' }), { qos: 1 });
      await new Promise((r) => setTimeout(r, 2_000));
      expect(sub.messages.filter((m) => m.topic.startsWith('fz/fz/response/'))).toEqual([]);
    } finally {
      await client.endAsync(true);
      daemon.proc.kill('SIGTERM');
      await daemon.finished;
      await sub.close();
    }
  });
});
