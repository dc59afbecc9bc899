import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Mosquitto } from '../helpers/mosquitto.js';
import { MqttCollector } from '../helpers/mqtt-collector.js';
import { startCli, waitForLog, type Started } from '../helpers/cli.js';
import { colourImage, tempDir, writeColourModel } from '../helpers/fixtures.js';
import { freePort } from '../helpers/ports.js';
import { hasUnixDgram, NotifyReceiver } from '../helpers/notify-socket.js';
import { buildSlowWhenBrightModel } from '../../src/modelgen/test-models.js';
import { demoLabels } from '../../src/modelgen/demo-model.js';

// The daemon as systemd runs it with Type=notify and WatchdogSec=: the built CLI with
// NOTIFY_SOCKET pointing at a real AF_UNIX datagram socket and WATCHDOG_USEC set, so
// WATCHDOG=1 is expected every 500 ms while the pipeline makes progress.

const WATCHDOG_USEC = 1_000_000;
const INTERVAL_MS = WATCHDOG_USEC / 2000;

if (!hasUnixDgram) console.warn('sd-notify.test.ts SKIPPED: the optional native module unix-dgram is not built here');

interface Prediction {
  ts: string;
  seq: number;
  latency_ms: { total: number };
}

describe.skipIf(!hasUnixDgram)('sd_notify and the progress watchdog', () => {
  let broker: Mosquitto;
  let dir: string;
  let colourModel: { model: string; labels: string };
  const running: Started[] = [];
  const receivers: NotifyReceiver[] = [];

  beforeAll(async () => {
    broker = await Mosquitto.start();
    dir = tempDir();
    colourModel = writeColourModel(join(dir, 'colour-model'));
  });

  afterEach(() => {
    for (const d of running.splice(0)) d.proc.kill('SIGKILL');
    for (const r of receivers.splice(0)) r.close();
  });

  afterAll(async () => {
    await broker?.stop();
  });

  function start(name: string, body: string): { daemon: Started; notify: NotifyReceiver } {
    const notify = NotifyReceiver.open();
    receivers.push(notify);
    const config = join(dir, `${name}.yaml`);
    writeFileSync(config, `device_id: ${name}\nmqtt: { url: ${broker.url}, base_topic: sdn }\n${body}`);
    const daemon = startCli(['run', '--config', config], { env: { NOTIFY_SOCKET: notify.path, WATCHDOG_USEC: String(WATCHDOG_USEC) } });
    running.push(daemon);
    return { daemon, notify };
  }

  async function images(name: string, colours: string[]): Promise<string> {
    const path = join(dir, name);
    mkdirSync(path);
    for (const [i, c] of colours.entries()) writeFileSync(join(path, `${String(i).padStart(2, '0')}-${c}.jpg`), await colourImage(c));
    return path;
  }

  it('READY=1 after the first prediction, STATUS= lines, WATCHDOG=1 while classifying, STOPPING=1 on SIGTERM', async () => {
    // The first frame (white) takes a second or so in this model, the dark ones milliseconds: a
    // READY=1 sent when the first frame arrives, rather than when it is classified, shows.
    writeFileSync(join(dir, 'first-slow.onnx'), buildSlowWhenBrightModel({ rows: 2_000, repeats: 1_000 }));
    writeFileSync(join(dir, 'first-slow.labels.txt'), demoLabels());
    const dark = Array.from({ length: 40 }, (_, i) => ['red', 'green', 'black'][i % 3]!);
    const frames = await images('fast', ['white', ...dark]);
    const sub = await MqttCollector.connect(broker.url, ['sdn/fast/cam/prediction']);
    try {
      const { daemon, notify } = start(
        'fast',
        `model: { path: ${dir}/first-slow.onnx, labels: ${dir}/first-slow.labels.txt, execution_providers: [cpu], intra_op_threads: 1 }\n` +
          `cameras:\n  - id: cam\n    source: { type: directory, path: ${frames}, fps: 10, loop: false }\n` +
          `publish: { only_on_change: false }\n`,
      );
      await notify.waitFor((m) => m.some((x) => x.fields.READY === '1'), 30_000, 'READY=1');
      const ready = notify.with('READY')[0]!;
      // The daemon said what it was doing before it was ready.
      expect(notify.messages[0]?.raw).toBe('STATUS=starting: loading the model');
      expect(ready.fields.STATUS).toMatch(/^classifying \d+\.\d fps, model \S+.*, mqtt connected$/);

      // READY came after the first frame was classified: that frame's capture time plus its total
      // latency is when the daemon published it, on the same wall clock as `ready.at`.
      await sub.waitFor((m) => m.length > 0, 10_000, 'first prediction');
      const first = sub.messages[0]!.json as Prediction;
      expect(first.seq).toBe(1);
      const classifiedAt = Date.parse(first.ts) + first.latency_ms.total;
      expect(classifiedAt).toBeLessThanOrEqual(ready.at + 1);
      expect(notify.with('WATCHDOG').every((m) => m.at >= ready.at)).toBe(true); // no pings before READY

      // Pings keep coming while the dark frames are classified (10 fps, a few ms each).
      await new Promise((r) => setTimeout(r, 3_000));
      const pings = notify.pings(ready.at);
      expect(pings.length).toBeGreaterThanOrEqual(4);
      const gaps = pings.slice(1).map((t, i) => t - pings[i]!);
      expect(Math.max(...gaps)).toBeLessThan(4 * INTERVAL_MS);
      expect(sub.messages.length).toBeGreaterThan(10);

      daemon.proc.kill('SIGTERM');
      await notify.waitFor((m) => m.some((x) => x.fields.STOPPING === '1'), 10_000, 'STOPPING=1');
      expect(notify.with('STOPPING')[0]?.fields.STATUS).toBe('stopping');
      expect((await daemon.finished).code).toBe(0);
      expect(notify.errors).toEqual([]);
    } finally {
      await sub.close();
    }
  });

  it('a wedged inference stops the pings while the event loop keeps running; pings came while frames were classified', async () => {
    // Dark frames run in milliseconds, the white one practically forever (over a minute here).
    writeFileSync(join(dir, 'wedge.onnx'), buildSlowWhenBrightModel());
    writeFileSync(join(dir, 'wedge.labels.txt'), demoLabels());
    const frames = await images('wedge', ['red', 'green', 'black', 'red', 'green', 'black', 'red', 'green', 'white']);
    const httpPort = await freePort();
    const { daemon, notify } = start(
      'wedge',
      `model: { path: ${dir}/wedge.onnx, labels: ${dir}/wedge.labels.txt, execution_providers: [cpu], intra_op_threads: 1 }\n` +
        `cameras:\n  - id: cam\n    source: { type: directory, path: ${frames}, fps: 4, loop: false }\nstats_interval: 1\n` +
        `http: { port: ${httpPort} }\n`,
    );
    await notify.waitFor((m) => m.some((x) => x.fields.READY === '1'), 45_000, 'READY=1');
    const readyAt = notify.with('READY')[0]!.at;

    // The white frame reaches the worker and does not come back.
    const stalled = await waitForLog(daemon, (l) => l.msg === 'pipeline not progressing: WATCHDOG=1 withheld; systemd restarts the service when WatchdogSec passes without one', 45_000);
    expect(String(stalled.why)).toMatch(/^inference running for \d+\.\d s$/);
    // While the dark frames were classified, pings came.
    const stalledAt = Date.parse(String(stalled.time));
    expect(notify.pings(readyAt).filter((t) => t < stalledAt).length).toBeGreaterThanOrEqual(2);

    // Ten intervals later: not a single ping since the stall, yet the process is alive and its
    // event loop still sends STATUS updates (which a mere timer would also do).
    const lastPing = Math.max(readyAt, ...notify.pings(readyAt));
    await new Promise((r) => setTimeout(r, 10 * INTERVAL_MS));
    await notify.waitFor((m) => m.some((x) => x.at > lastPing && x.fields.STATUS?.startsWith('stalled: inference running for')), 15_000, 'a "stalled" STATUS');
    const quietFor = Date.now() - lastPing;
    expect(notify.pings(lastPing)).toEqual([]);
    expect(quietFor).toBeGreaterThanOrEqual(10 * INTERVAL_MS);
    expect(daemon.proc.exitCode).toBeNull();
    // A run is still in flight: the last frame was captured but is neither classified nor dropped.
    const stats = await waitForLog(daemon, (l) => l.msg === 'stats' && Date.parse(String(l.time)) > lastPing, 15_000);
    const cam = (stats.cameras as Record<string, { captured: number; classified: number; dropped: number; decode_errors: number }>).cam!;
    expect(cam.captured).toBe(9);
    expect(cam.captured - cam.classified - cam.dropped - cam.decode_errors).toBe(1);
    expect(daemon.logs().some((l) => l.msg === 'pipeline progressing again; watchdog pings resumed')).toBe(false);
    // Liveness probes outside systemd see the same verdict.
    const health = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
    expect(health.status).toBe(503);
    expect(await health.json()).toMatchObject({ status: 'stalled', why: expect.stringMatching(/^inference running for/) });
  });

  it('a camera in backoff that never delivered a frame: READY=1 still comes, and the pings go on', async () => {
    const port = await freePort(); // nothing listens there: ffmpeg fails, the source backs off and retries
    const httpPort = await freePort();
    const { daemon, notify } = start(
      'backoff',
      `model: { path: ${colourModel.model}, labels: ${colourModel.labels}, execution_providers: [cpu] }\n` +
        `cameras:\n  - id: door\n    source: { type: ffmpeg, input: { kind: http, url: 'http://127.0.0.1:${port}/stream' }, backoff_initial_ms: 200, backoff_max_ms: 1000 }\n` +
        `http: { port: ${httpPort} }\n`,
    );
    await notify.waitFor((m) => m.some((x) => x.fields.READY === '1'), 30_000, 'READY=1');
    const ready = notify.with('READY')[0]!;
    expect(ready.fields.STATUS).toMatch(/^waiting for cameras, model \S+.*; door offline \(/);
    await new Promise((r) => setTimeout(r, 3_000));
    expect(notify.pings(ready.at).length).toBeGreaterThanOrEqual(4);
    // It really is retrying, not merely idle.
    await waitForLog(daemon, (l) => l.msg === 'camera offline', 10_000);
    expect(daemon.logs().some((l) => l.msg === 'pipeline not progressing: WATCHDOG=1 withheld; systemd restarts the service when WatchdogSec passes without one')).toBe(false);
    // Honest waiting is alive (200), though not ready (no camera online).
    expect((await fetch(`http://127.0.0.1:${httpPort}/healthz`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status).toBe(503);
    daemon.proc.kill('SIGTERM');
    await notify.waitFor((m) => m.some((x) => x.fields.STOPPING === '1'), 10_000, 'STOPPING=1');
    expect((await daemon.finished).code).toBe(0);
  });
});
