import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectAsync, type MqttClient } from 'mqtt';
import { Mosquitto } from '../helpers/mosquitto.js';
import { MqttCollector } from '../helpers/mqtt-collector.js';
import { startCli, type Started } from '../helpers/cli.js';
import { colourImage, tempDir, writeColourModel } from '../helpers/fixtures.js';
import { seededRandom } from '../../src/core/seeded-random.js';

// 1,000 fuzzed requests against the real daemon: random bytes, deep JSON, huge strings, wrong
// types, unknown commands. The daemon must stay up and answer every request.

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
      `device_id: fz\nstate_dir: ${join(dir, 'state')}\nmodel: { path: ${m.model}, labels: ${m.labels}, execution_providers: [cpu] }\ncameras:\n  - id: cam\n    source: { type: directory, path: ${images}, fps: 5, loop: true }\nmqtt: { url: ${broker.url}, base_topic: fz }\ncommands: { max_payload_bytes: 4096, control: open }\n`,
    );
  });

  afterAll(async () => {
    await broker?.stop();
  });

  /** Runs `body` against a started daemon, then checks it still classifies and exits 0 on SIGTERM. */
  async function attack(body: (client: MqttClient, sub: MqttCollector, daemon: Started) => Promise<void>): Promise<void> {
    const sub = await MqttCollector.connect(broker.url, ['fz/fz/response/+', 'fz/fz/cam/prediction']);
    const daemon = startCli(['run', '--config', config]);
    const client = await connectAsync(broker.url, { clean: true });
    try {
      await sub.waitFor((m) => m.some((x) => x.topic === 'fz/fz/cam/prediction'), 30_000, 'daemon up');
      await body(client, sub, daemon);
      expect(daemon.proc.exitCode).toBeNull();
      const before = sub.on('fz/fz/cam/prediction').length;
      await sub.waitFor((m) => m.filter((x) => x.topic === 'fz/fz/cam/prediction').length > before + 2, 15_000, 'predictions afterwards');
    } finally {
      await client.endAsync(true);
      daemon.proc.kill('SIGTERM');
      const done = await daemon.finished;
      await sub.close();
      expect(done.code).toBe(0);
    }
  }

  it('survives 1,000 fuzzed requests and answers every one', async () => {
    const seed = 20261126;
    const rand = seededRandom(seed); // deterministic, so a failure can be replayed
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

    await attack(async (client, sub) => {
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
    });
  });

  it('answers a burst of 5,000 requests (ok, busy or error, never silence) and __proto__ keys are plain unknown keys', async () => {
    await attack(async (client, sub) => {
      const proto = await Promise.all(
        [
          '{"transaction":"p1","__proto__":{"top_k":1}}',
          '{"transaction":"p2","constructor":{"prototype":{"top_k":1}}}',
          '{"transaction":"p3","camera":"cam","__proto__":{"timeout_ms":1}}',
        ].map(async (body, i) => {
          await client.publishAsync(`fz/fz/request/${i === 2 ? 'classify' : 'set'}`, body, { qos: 1 });
          return `p${i + 1}`;
        }),
      );
      await sub.waitFor((m) => proto.every((t) => m.some((x) => (x.json as { transaction?: unknown } | undefined)?.transaction === t)), 15_000, 'the __proto__ answers');
      for (const t of proto) {
        const r = sub.messages.find((x) => (x.json as { transaction?: unknown } | undefined)?.transaction === t)!.json as { status: string; error: string };
        expect(r, t).toMatchObject({ status: 'error', error: expect.stringMatching(/unknown key|Unrecognized key/i) });
      }
      // Ten back-to-back waves of 500: mosquitto drops QoS 1 messages beyond its 1,000-message
      // queue per subscriber, so a single wave of 5,000 would measure the test's subscriber.
      const N = 5_000;
      const WAVE = 500;
      const burst = () => sub.messages.filter((m) => String((m.json as { transaction?: unknown } | undefined)?.transaction).startsWith('b'));
      for (let start = 0; start < N; start += WAVE) {
        for (let i = start; i < start + WAVE; i++) {
          client.publish('fz/fz/request/classify', JSON.stringify({ transaction: `b${i}`, camera: 'cam', timeout_ms: 100 }), { qos: 0 });
        }
        await sub.waitFor(() => burst().length >= start + WAVE, 60_000, `responses to requests ${start}-${start + WAVE - 1}`);
      }
      const kinds = new Map<string, number>();
      for (const m of burst()) {
        const r = m.json as { status: string; error: string | null };
        const kind = r.status === 'ok' ? 'ok' : /^busy/.test(r.error ?? '') ? 'busy' : /no frame from cam within 100 ms/.test(r.error ?? '') ? 'timeout' : `other: ${r.error}`;
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      }
      console.log(`5,000-request burst: ${JSON.stringify(Object.fromEntries(kinds))}`);
      expect([...kinds.keys()].filter((k) => k.startsWith('other'))).toEqual([]);
      expect(kinds.get('busy') ?? 0).toBeGreaterThan(0);
    });
  }, 240_000);

  it('with commands.enabled false, the daemon does not listen for requests at all', async () => {
    const off = config.replace(/\.yaml$/, '-off.yaml');
    writeFileSync(off, `${readFileSync(config, 'utf8').replace('commands: { max_payload_bytes: 4096, control: open }', 'commands: { enabled: false }')}`);
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
