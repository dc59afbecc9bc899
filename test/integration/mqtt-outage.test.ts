import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Mosquitto } from '../helpers/mosquitto.js';
import { MqttCollector, type Received } from '../helpers/mqtt-collector.js';
import { startCli, waitForLog, type Started } from '../helpers/cli.js';
import { colourImage, tempDir, writeColourModel } from '../helpers/fixtures.js';

// Delivery that loses nothing, against a real mosquitto: a 30 s outage at full rate, and a
// daemon restart in the middle of an outage with the disk queue on.

interface Prediction {
  camera: string;
  seq: number;
}

const seqs = (messages: Received[], camera: string): number[] =>
  messages.map((m) => m.json as Prediction).filter((p) => p.camera === camera).map((p) => p.seq);

/** `xs` is exactly from..to, in order, each once. */
function expectContiguous(xs: number[], from: number, to: number): void {
  const missing = [];
  for (let s = from; s <= to; s++) if (!xs.includes(s)) missing.push(s);
  expect({ missing, duplicates: xs.length - new Set(xs).size, inOrder: xs.every((x, i) => i === 0 || x > xs[i - 1]!) }).toEqual({
    missing: [],
    duplicates: 0,
    inOrder: true,
  });
  expect(xs[0]).toBe(from);
  expect(xs.at(-1)).toBe(to);
}

describe('MQTT delivery through outages', () => {
  let broker: Mosquitto;
  let dir: string;
  let model: { model: string; labels: string };

  beforeAll(async () => {
    broker = await Mosquitto.start();
    dir = tempDir();
    model = writeColourModel(join(dir, 'm'), { size: 64 });
  });

  afterAll(async () => {
    await broker?.stop();
  });

  const config = (name: string, camera: string, source: string, extra = ''): string => {
    const p = join(dir, `${name}.yaml`);
    writeFileSync(
      p,
      `device_id: out\nstate_dir: ${join(dir, 'state')}\nmodel: { path: ${model.model}, labels: ${model.labels}, execution_providers: [cpu], preprocess: { size: 64, resize: 64 } }\n` +
        `cameras:\n  - id: ${camera}\n    source: ${source}\nmqtt: { url: ${broker.url}, base_topic: out, reconnect_max_ms: 2000${extra} }\nstats_interval: 1\n`,
    );
    return p;
  };

  async function stop(daemon: Started): Promise<void> {
    daemon.proc.kill('SIGTERM');
    expect((await daemon.finished).code).toBe(0);
  }

  it('every QoS 1 prediction published during a 30 s outage arrives, in order, none twice', async () => {
    const images = join(dir, 'loop');
    mkdirSync(images);
    writeFileSync(join(images, 'a.jpg'), await colourImage('blue', { width: 96, height: 64 }));
    const sub = await MqttCollector.connect(broker.url, ['out/out/+/prediction']);
    const daemon = startCli(['run', '--config', config('full-rate', 'fast', `{ type: directory, path: ${images}, fps: 25, loop: true }`)]);
    try {
      await sub.waitFor((m) => m.length >= 20, 30_000, 'predictions before the outage');
      await broker.stop();
      const outageStart = Date.now();
      await new Promise((r) => setTimeout(r, 30_000));
      await broker.restart();
      const during = await waitForLog(daemon, (l) => l.msg === 'MQTT connected' && Number(l.queued) > 0, 30_000);
      const lastCaptured = await waitForLog(daemon, (l) => l.msg === 'stats' && Date.parse(String(l.time)) > outageStart + 31_000, 30_000);
      const captured = (lastCaptured.cameras as Record<string, { classified: number }>).fast!.classified;
      await sub.waitFor((m) => seqs(m, 'fast').includes(captured), 60_000, `prediction ${captured}`);
      const got = seqs(sub.messages, 'fast');
      console.log(`30 s outage: ${String(during.queued)} queued at reconnect, ${got.length} received, last seq ${captured}`);
      expect(Number(during.queued)).toBeGreaterThan(300); // ~25 fps for 30 s were held
      expectContiguous(got.filter((s) => s <= captured), got[0]!, captured);
    } finally {
      await stop(daemon);
      await sub.close();
    }
  });

  it('a daemon restarted during an outage with the disk queue on loses nothing', async () => {
    const images = join(dir, 'forty');
    mkdirSync(images);
    const jpeg = await colourImage('red', { width: 96, height: 64 });
    for (let i = 0; i < 40; i++) writeFileSync(join(images, `${String(i).padStart(2, '0')}.jpg`), jpeg);
    const sub = await MqttCollector.connect(broker.url, ['out/out/+/prediction']);
    await broker.stop();
    const disk = ', queue: { disk: true }';
    const first = startCli(['run', '--config', config('disk-1', 'one', `{ type: directory, path: ${images}, fps: 20 }`, disk)]);
    await waitForLog(first, (l) => l.msg === 'source ended', 30_000);
    await waitForLog(first, (l) => l.msg === 'stats' && (l.cameras as Record<string, { classified: number }>).one?.classified === 40, 10_000);
    await stop(first);
    const second = startCli(['run', '--config', config('disk-2', 'two', `{ type: directory, path: ${images}, fps: 20 }`, disk)]);
    try {
      const restored = await waitForLog(second, (l) => l.msg === 'outbox: messages restored from disk', 30_000);
      expect(restored.queued).toBe(40);
      await waitForLog(second, (l) => l.msg === 'source ended', 30_000);
      await broker.restart();
      await sub.waitFor((m) => seqs(m, 'one').length >= 40 && seqs(m, 'two').length >= 40, 60_000, 'both runs delivered');
      expectContiguous(seqs(sub.messages, 'one'), 1, 40);
      expectContiguous(seqs(sub.messages, 'two'), 1, 40);
      // The first run's backlog went out before the second run's messages.
      const order = sub.messages.map((m) => (m.json as Prediction).camera);
      expect(order.lastIndexOf('one')).toBeLessThan(order.indexOf('two'));
    } finally {
      await stop(second);
      await sub.close();
    }
  });
});
