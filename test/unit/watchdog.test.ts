import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { Clock } from '../../src/core/clock.js';
import type { Frame } from '../../src/camera/frame.js';
import type { CameraHealthSnapshot, CameraState } from '../../src/camera/camera-health.js';
import type { Classification } from '../../src/inference/classifier.js';
import type { PreparedTensor } from '../../src/vision/preprocess.js';
import { Pipeline } from '../../src/daemon/pipeline.js';
import { ServiceWatchdog } from '../../src/service/watchdog.js';

// The real Pipeline and ServiceWatchdog on a hand-driven clock, with a classifier the test
// settles by hand: the worker can be "wedged" by simply never answering.

interface Pending<T> {
  resolve: (v: T) => void;
}

class HandClassifier {
  prepares: Pending<PreparedTensor>[] = [];
  classifies: (Pending<Classification> & { reject: (err: Error) => void })[] = [];
  prepare(): Promise<PreparedTensor> {
    return new Promise((resolve) => this.prepares.push({ resolve }));
  }
  classify(): Promise<Classification> {
    return new Promise((resolve, reject) => this.classifies.push({ resolve, reject }));
  }
  /** Decodes everything waiting and fails every inference waiting (a model that outputs NaN). */
  failAll(message: string): void {
    this.finishDecodes();
    for (const c of this.classifies.splice(0)) c.reject(new Error(message));
  }
  /** Decodes and classifies everything waiting. */
  finishAll(): void {
    for (const p of this.prepares.splice(0)) p.resolve({ data: new Float32Array(3), dims: [1, 3], width: 640, height: 480 });
    for (const c of this.classifies.splice(0)) c.resolve({ top: [{ index: 0, label: 'red', score: 0.9 }], inferenceMs: 5, scores: [] });
  }
  finishDecodes(): void {
    for (const p of this.prepares.splice(0)) p.resolve({ data: new Float32Array(3), dims: [1, 3], width: 640, height: 480 });
  }
}

function handClock(): Clock & { advance(ms: number): Promise<void> } {
  let now = 0;
  const sleepers: { until: number; resolve: () => void }[] = [];
  const flush = async (): Promise<void> => {
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  };
  return {
    now: () => 1_700_000_000_000 + now,
    monotonic: () => now,
    sleep: (ms, signal) =>
      new Promise<void>((resolve) => {
        const done = (): void => {
          signal?.removeEventListener('abort', done);
          resolve();
        };
        sleepers.push({ until: now + ms, resolve: done });
        signal?.addEventListener('abort', done, { once: true });
      }),
    // In 100 ms steps, so the three loops (200 ms, 500 ms, 5 s) interleave as they would.
    advance: async (ms) => {
      for (let step = 0; step < ms; step += 100) {
        now += 100;
        for (const s of sleepers.splice(0)) if (s.until <= now) s.resolve(); else sleepers.push(s);
        await flush();
      }
    },
  };
}

function setup(overrides: Partial<ConstructorParameters<typeof ServiceWatchdog>[0]> = {}) {
  const clock = handClock();
  const classifier = new HandClassifier();
  const logs: { level: number; msg: string; why?: string }[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void logs.push(JSON.parse(s) as (typeof logs)[number]) });
  const pipeline = new Pipeline({ logger, clock, classifier, topK: () => 1, publish: () => undefined });
  let state: CameraState = 'starting';
  const sent: { at: number; fields: Record<string, string> }[] = [];
  const watchdog = new ServiceWatchdog({
    logger,
    clock,
    notifier: { enabled: true, watchdogUsec: 1_000_000, notify: (fields) => void sent.push({ at: clock.monotonic(), fields }) },
    pipeline,
    cameras: (): Record<string, CameraHealthSnapshot> => ({
      cam: { state, since: 0, lastError: state === 'offline' ? 'connection refused' : null, fps: 0, reconnectsLastHour: 0, stallsLastHour: 0 },
    }),
    model: () => ({ name: 'colors', version: '1.0' }),
    mqttConnected: () => true,
    ...overrides,
  });
  const sink = pipeline.sink('cam');
  let seq = 0;
  const push = (): void => {
    state = 'online';
    const frame: Frame = { camera: 'cam', seq: ++seq, capturedAt: clock.now(), source: 'test', data: Buffer.from([seq]) };
    sink.push(frame);
  };
  const pings = (): number[] => sent.filter((s) => s.fields.WATCHDOG === '1').map((s) => s.at);
  const field = (key: string): { at: number; value: string }[] => sent.filter((s) => key in s.fields).map((s) => ({ at: s.at, value: s.fields[key]! }));
  return { clock, classifier, pipeline, watchdog, logs, sent, push, pings, field, setState: (s: CameraState) => (state = s) };
}

describe('ServiceWatchdog with the real pipeline', () => {
  it('a camera that makes no progress (its source reported a stall) is "failing" for /healthz, live, without withholding pings', async () => {
    let cameras: Record<string, CameraHealthSnapshot> = {};
    const snap = (over: Partial<CameraHealthSnapshot>): CameraHealthSnapshot => ({ state: 'online', since: 0, lastError: null, fps: 1, reconnectsLastHour: 0, stallsLastHour: 0, ...over });
    const t = setup({ cameras: () => cameras });
    await t.pipeline.start();
    await t.watchdog.start();
    cameras = { door: snap({}), yard: snap({ state: 'offline', lastError: 'connection refused' }) };
    expect(t.watchdog.failing, 'offline is an honest wait').toBeUndefined();
    const why = 'directory source /srv/yard makes no progress: no frame from the 2 image file(s) of the last pass';
    cameras = { door: snap({}), yard: snap({ state: 'offline', lastError: why, stallsLastHour: 1, stalledSince: 1 }) };
    expect(t.watchdog.failing).toBe(`camera yard makes no progress: ${why}`);
    expect(t.watchdog.stalled).toBeUndefined();
    const pings = t.pings().length;
    await t.clock.advance(1_000);
    expect(t.pings().length, 'a restart would not fix the files: pings go on').toBeGreaterThan(pings);
    cameras = { door: snap({}), yard: snap({ stallsLastHour: 1 }) }; // a frame came: cleared
    expect(t.watchdog.failing).toBeUndefined();
    await t.watchdog.stop();
    await t.pipeline.stop();
  });

  it('every inference failing (NaN outputs) is "failing" for /healthz, keeps the pings, and clears on a classified frame', async () => {
    const t = setup();
    await t.pipeline.start();
    await t.watchdog.start();
    t.push();
    t.classifier.finishAll();
    await t.clock.advance(200);
    t.classifier.finishAll();
    await t.clock.advance(1_000);
    expect(t.watchdog.failing).toBeUndefined();
    const NAN = 'model output holds NaN or Infinity (8 of 8 values; class 0 is NaN)';
    for (let i = 0; i < 20; i++) {
      t.push();
      t.classifier.failAll(NAN);
      await t.clock.advance(100);
      t.classifier.failAll(NAN);
    }
    expect(t.watchdog.failing).toMatch(/^every inference failed for 0\.5 s \(\d+ errors, none classified\): model output holds NaN/);
    expect(t.watchdog.stalled).toBeUndefined();
    const pings = t.pings().length;
    await t.clock.advance(1_000);
    expect(t.pings().length, 'a restart would not help: pings go on').toBeGreaterThan(pings);
    expect(t.field('STATUS').at(-1)?.value).toMatch(/^failing: every inference failed/);
    expect(t.logs.filter((l) => l.msg.startsWith('every inference is failing'))).toHaveLength(1);
    // Nothing new (camera quiet): still failing; then a frame classified: cleared.
    await t.clock.advance(1_000);
    expect(t.watchdog.failing).toBeDefined();
    t.push();
    t.classifier.finishAll();
    await t.clock.advance(100);
    t.classifier.finishAll();
    await t.clock.advance(600);
    expect(t.watchdog.failing).toBeUndefined();
    expect(t.logs.some((l) => l.msg === 'inference succeeding again')).toBe(true);
    await t.watchdog.stop();
    await t.pipeline.stop();
  });

  it('READY=1 only after the first classification; pings while classifying; none while the worker is wedged; back after', async () => {
    const t = setup();
    await t.pipeline.start();
    await t.watchdog.start();

    await t.clock.advance(1_000); // camera still starting
    expect(t.sent).toEqual([]);
    t.push();
    t.classifier.finishDecodes(); // first frame now in the worker
    await t.clock.advance(1_000);
    expect(t.field('READY')).toEqual([]);
    expect(t.pings()).toEqual([]); // no pings before READY=1: systemd arms the watchdog then
    t.classifier.finishAll();
    await t.clock.advance(200);
    const ready = t.field('READY');
    expect(ready).toHaveLength(1);
    expect(t.sent.find((s) => s.fields.READY)?.fields.STATUS).toMatch(/^classifying \d+\.\d fps, model colors 1\.0, mqtt connected$/);

    // Classifying: a frame every 250 ms, each finished at once.
    for (let i = 0; i < 12; i++) {
      t.push();
      t.classifier.finishAll();
      await t.clock.advance(100);
      t.classifier.finishAll();
      await t.clock.advance(200);
    }
    const healthy = t.pings().filter((at) => at > ready[0]!.at);
    expect(healthy.length).toBeGreaterThanOrEqual(6); // 3.6 s at one ping per 500 ms

    // Wedge: a frame enters the worker and never comes back; the camera keeps delivering.
    t.push();
    t.classifier.finishDecodes();
    await t.clock.advance(100);
    const wedgedAt = t.clock.monotonic();
    for (let i = 0; i < 30; i++) {
      t.push(); // replaces the frame in the slot (dropped), decodes, waits for the worker
      t.classifier.finishDecodes();
      await t.clock.advance(200);
    }
    const during = t.pings().filter((at) => at > wedgedAt + 500); // one check may still see a young inference
    expect(during).toEqual([]);
    const warn = t.logs.find((l) => l.msg.startsWith('pipeline not progressing'));
    expect(warn?.why).toMatch(/^inference running for \d+\.\d s$/);
    // The event loop is fine all along: STATUS still refreshes, saying why.
    expect(t.field('STATUS').filter((s) => s.at > wedgedAt).some((s) => s.value.startsWith('stalled: inference running for'))).toBe(true);

    // The worker answers again: pings resume.
    const unwedgedAt = t.clock.monotonic();
    for (let i = 0; i < 11; i++) {
      t.classifier.finishAll();
      await t.clock.advance(100);
    }
    expect(t.pings().filter((at) => at > unwedgedAt).length).toBeGreaterThanOrEqual(2);
    expect(t.logs.some((l) => l.msg === 'pipeline progressing again; watchdog pings resumed')).toBe(true);

    // Camera goes offline (backoff): nothing in flight, nothing waiting: an honest wait.
    t.classifier.finishAll();
    await t.clock.advance(100);
    t.classifier.finishAll();
    t.setState('offline');
    const offlineAt = t.clock.monotonic();
    await t.clock.advance(5_000);
    expect(t.pings().filter((at) => at > offlineAt).length).toBeGreaterThanOrEqual(9);
    expect(t.field('STATUS').at(-1)?.value).toMatch(/; cam offline \(connection refused\)$/);

    await t.watchdog.stop();
    const count = t.sent.length;
    await t.clock.advance(2_000);
    expect(t.sent.length).toBe(count);
    await t.pipeline.stop();
  });

  it('READY=1 without any frame when every camera is waiting (unplugged camera), and pings go on', async () => {
    const t = setup();
    t.setState('offline');
    await t.pipeline.start();
    await t.watchdog.start();
    await t.clock.advance(200);
    const ready = t.sent.find((s) => s.fields.READY === '1');
    expect(ready?.fields.STATUS).toBe('waiting for cameras, model colors 1.0, mqtt connected; cam offline (connection refused)');
    await t.clock.advance(3_000);
    expect(t.pings().length).toBeGreaterThanOrEqual(5);
    await t.watchdog.stop();
  });

  it('without systemd (no NOTIFY_SOCKET) sends nothing, yet still judges progress for /healthz', async () => {
    const t = setup({ notifier: { enabled: false, watchdogUsec: undefined, notify: () => expect.unreachable('notify while disabled') }, progressIntervalMs: 1_000 });
    await t.pipeline.start();
    await t.watchdog.start();
    t.push();
    t.classifier.finishAll();
    await t.clock.advance(100);
    t.classifier.finishAll();
    await t.clock.advance(2_000);
    expect(t.watchdog.stalled).toBeUndefined();
    // Wedge: the next frame enters the worker and never comes back.
    t.push();
    t.classifier.finishDecodes();
    await t.clock.advance(3_000);
    expect(t.watchdog.stalled).toMatch(/^inference running for \d+\.\d s$/);
    expect(t.logs.find((l) => l.msg.startsWith('pipeline not progressing'))?.msg).toBe('pipeline not progressing: /healthz reports 503 until it does');
    t.classifier.finishAll();
    await t.clock.advance(1_100);
    expect(t.watchdog.stalled).toBeUndefined();
    await t.watchdog.stop();
    await t.pipeline.stop();
    expect(t.sent).toEqual([]);
  });
});
