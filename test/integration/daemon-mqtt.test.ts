import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Mosquitto } from '../helpers/mosquitto.js';
import { MqttCollector } from '../helpers/mqtt-collector.js';
import { startCli, waitForLog } from '../helpers/cli.js';
import { colourImage, tempDir, writeColourModel } from '../helpers/fixtures.js';
import { schemaErrors } from '../helpers/schemas.js';

// The daemon as a user runs it: the built CLI, a YAML config, a real mosquitto on loopback.

const COLOURS = ['red', 'green', 'blue', 'yellow', 'purple', 'white'];

interface Prediction {
  seq: number;
  camera: string;
  frame: { source: string; width: number; height: number };
  top: { label: string; score: number }[];
}

describe('daemon against a real mosquitto', () => {
  let broker: Mosquitto;
  let dir: string;
  let configPath: string;

  beforeAll(async () => {
    broker = await Mosquitto.start();
    dir = tempDir();
    const { model, labels } = writeColourModel(join(dir, 'model'));
    const images = join(dir, 'images');
    mkdirSync(images);
    for (const [i, c] of COLOURS.entries()) {
      const png = i % 2 === 1;
      writeFileSync(join(images, `${i}0-${c}.${png ? 'png' : 'jpg'}`), await colourImage(c, { format: png ? 'png' : 'jpeg', width: 400 + i * 10 }));
    }
    // Bad frames between the good ones: they are skipped, not fatal.
    writeFileSync(join(images, '05-empty.jpg'), Buffer.alloc(0));
    const good = await colourImage('blue');
    writeFileSync(join(images, '15-truncated.jpg'), good.subarray(0, good.length >> 1));
    writeFileSync(join(images, '25-garbage.png'), Buffer.from('this is not an image at all'));
    configPath = join(dir, 'config.yaml');
    writeFileSync(
      configPath,
      `device_id: it-01
model:
  path: ${model}
  labels: ${labels}
  preset: imagenet
  execution_providers: [tensorrt, cuda, cpu]
cameras:
  - id: shelf
    source: { type: directory, path: ${images}, fps: 20, loop: false }
mqtt:
  url: ${broker.url}
  base_topic: ec-test
publish: { top_k: 3 }
`,
    );
  });

  afterAll(async () => {
    await broker?.stop();
  });

  it('publishes one schema-valid prediction per good image, skips bad frames, and stops cleanly', async () => {
    const sub = await MqttCollector.connect(broker.url, ['ec-test/#']);
    const daemon = startCli(['run', '--config', configPath]);
    try {
      const predTopic = 'ec-test/it-01/shelf/prediction';
      await sub.waitFor((m) => m.filter((x) => x.topic === predTopic).length >= COLOURS.length, 30_000, 'predictions');
      await waitForLog(daemon, () => daemon.logs().filter((l) => l.msg === 'frame skipped: cannot decode').length >= 3);

      const preds = sub.on(predTopic).map((m) => m.json as Prediction);
      expect(preds.map((p) => p.top[0]?.label)).toEqual(COLOURS);
      expect(preds.map((p) => p.frame.source)).toEqual(COLOURS.map((c, i) => `${i}0-${c}.${i % 2 ? 'png' : 'jpg'}`));
      for (const [i, p] of preds.entries()) {
        expect(schemaErrors.prediction(p)).toEqual([]);
        expect(p.top).toHaveLength(3);
        expect(p.frame.width).toBe(400 + i * 10);
      }
      // seq counts captured frames, bad ones included: gaps show where frames were skipped.
      expect(preds.map((p) => p.seq)).toEqual([1, 3, 5, 7, 8, 9]);

      const skipped = daemon.logs().filter((l) => l.msg === 'frame skipped: cannot decode');
      expect(skipped.map((l) => [l.camera, l.seq, l.source])).toEqual([
        ['shelf', 2, '05-empty.jpg'],
        ['shelf', 4, '15-truncated.jpg'],
        ['shelf', 6, '25-garbage.png'],
      ]);
      expect(String(skipped[0]?.err)).toMatch(/empty frame/);

      const online = sub.on('ec-test/it-01/status').map((m) => m.json as Record<string, unknown>);
      expect(online[0]).toMatchObject({ v: 1, state: 'online', device: 'it-01', execution_provider: 'cpu' });
      expect(schemaErrors.status(online[0])).toEqual([]);
      // Each unavailable execution provider is reported once, with its reason.
      const fallbacks = daemon.logs().filter((l) => l.msg === 'execution provider unavailable, falling back');
      expect(fallbacks.map((l) => l.provider)).toEqual(['tensorrt', 'cuda']);

      const t0 = Date.now();
      daemon.proc.kill('SIGTERM');
      const done = await daemon.finished;
      expect(done.code).toBe(0);
      expect(Date.now() - t0).toBeLessThan(5_000);
      await sub.waitFor((m) => m.some((x) => x.topic === 'ec-test/it-01/status' && (x.json as { state?: string }).state === 'stopped'), 5_000, 'stopped');
      const stopped = sub.on('ec-test/it-01/status').at(-1)?.json;
      expect(stopped).toMatchObject({ state: 'stopped' });
      expect(schemaErrors.status(stopped)).toEqual([]);
    } finally {
      daemon.proc.kill('SIGKILL');
      await sub.close();
    }
  });

  it('leaves a retained "offline" last will when the daemon is killed', async () => {
    const daemon = startCli(['run', '--config', configPath]);
    const watcher = await MqttCollector.connect(broker.url, ['ec-test/it-01/status']);
    await watcher.waitFor((m) => m.some((x) => (x.json as { state?: string }).state === 'online'), 30_000, 'online');
    daemon.proc.kill('SIGKILL');
    await daemon.finished;
    // The broker sends the will once it notices the dead connection (socket closed).
    await watcher.waitFor((m) => m.some((x) => (x.json as { state?: string }).state === 'offline'), 10_000, 'offline will');
    await watcher.close();
    // A subscriber arriving later sees the retained state.
    const late = await MqttCollector.connect(broker.url, ['ec-test/it-01/status']);
    await late.waitFor((m) => m.length > 0, 5_000, 'retained status');
    const retained = late.messages[0]!;
    expect(retained.retain).toBe(true);
    expect(retained.json).toMatchObject({ v: 1, state: 'offline', device: 'it-01' });
    expect(schemaErrors.status(retained.json)).toEqual([]);
    await late.close();
  });

  it('keeps running through a broker outage and publishes once the broker is back', async () => {
    const loopDir = join(dir, 'loop');
    mkdirSync(loopDir);
    writeFileSync(join(loopDir, 'a-green.jpg'), await colourImage('green'));
    const cfg = join(dir, 'loop.yaml');
    writeFileSync(
      cfg,
      `device_id: it-02\nmodel: { path: ${join(dir, 'model/colors.onnx')}, labels: ${join(dir, 'model/colors.labels.txt')}, execution_providers: [cpu] }\ncameras:\n  - id: cam\n    source: { type: directory, path: ${loopDir}, fps: 5, loop: true }\nmqtt: { url: ${broker.url}, base_topic: ec-test, queue: { max_messages: 2 } }\nstats_interval: 0.5\n`,
    );
    const daemon = startCli(['run', '--config', cfg]);
    try {
      const topic = 'ec-test/it-02/cam/prediction';
      let sub = await MqttCollector.connect(broker.url, [topic]);
      await sub.waitFor((m) => m.length >= 2, 30_000, 'predictions before outage');
      const lastBefore = (sub.messages.at(-1)?.json as Prediction).seq;
      await sub.close();
      await broker.stop();
      await new Promise((r) => setTimeout(r, 2_000));
      expect(daemon.proc.exitCode).toBeNull();
      await broker.restart();
      sub = await MqttCollector.connect(broker.url, [topic]);
      await sub.waitFor((m) => m.length >= 4, 30_000, 'predictions after outage');
      const seqs = sub.messages.map((m) => (m.json as Prediction).seq);
      // ~10 frames during the outage, at most 2 held: the oldest were dropped, the newest kept,
      // and what arrives is in order with no repeats.
      expect(seqs[0]).toBeGreaterThan(lastBefore + 2);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      expect(new Set(seqs).size).toBe(seqs.length);
      expect((sub.messages[0]?.json as Prediction).top[0]?.label).toBe('green');
      await sub.close();
      const logs = daemon.logs();
      expect(logs.some((l) => l.msg === 'MQTT offline; messages are queued until it reconnects')).toBe(true);
      expect(logs.filter((l) => l.msg === 'outbox full: dropping the oldest messages').length).toBeGreaterThanOrEqual(1);
      const reconnect = await waitForLog(daemon, (l) => l.msg === 'MQTT connected' && Number(l.dropped) > 0);
      expect(reconnect.dropped).toBeGreaterThan(0);
      const stats = (await waitForLog(daemon, (l) => l.msg === 'stats' && (l.mqtt as { dropped: number }).dropped > 0)) as {
        cameras: Record<string, { captured: number; classified: number }>;
      };
      expect(stats.cameras.cam?.classified).toBeGreaterThan(0);
    } finally {
      daemon.proc.kill('SIGTERM');
      expect((await daemon.finished).code).toBe(0);
    }
  });
});
