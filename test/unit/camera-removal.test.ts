import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { Frame } from '../../src/camera/frame.js';
import type { Classification } from '../../src/inference/classifier.js';
import type { PreparedTensor } from '../../src/vision/preprocess.js';
import { FrameSlots } from '../../src/daemon/frame-slots.js';
import { Pipeline, type ClassifiedFrame } from '../../src/daemon/pipeline.js';
import { StatsSchedule } from '../../src/daemon/stats-schedule.js';

// A camera removed by a configuration reload: its slot, counters and in-flight frame go, the
// other cameras' rotation is undisturbed.

const frame = (camera: string, seq: number): Frame => ({ camera, seq, capturedAt: 1_000 + seq, source: `${camera}.jpg`, data: Buffer.from([seq]) });
const noEvents = { onFrame: () => undefined, onDrop: () => undefined, onCaptureError: () => undefined, onEnd: () => undefined };
const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('FrameSlots.remove', () => {
  it('drops the camera, its waiting frame and counters; the rotation carries on with the others', () => {
    const slots = new FrameSlots(noEvents);
    const [a, b, c] = ['a', 'b', 'c'].map((id) => slots.sink(id));
    a!.push(frame('a', 1));
    expect(slots.take()?.camera).toBe('a'); // the cursor now points at b
    b!.push(frame('b', 1));
    c!.push(frame('c', 1));
    a!.push(frame('a', 2));
    slots.remove('b');
    expect(slots.has('b')).toBe(false);
    expect(Object.keys(slots.snapshot())).toEqual(['a', 'c']);
    expect([slots.take(), slots.take(), slots.take()].map((f) => f && `${f.camera}${f.seq}`)).toEqual(['c1', 'a2', undefined]);
  });

  it('wakes a source of the removed camera waiting for room', async () => {
    const slots = new FrameSlots(noEvents);
    const b = slots.sink('b');
    b.push(frame('b', 1));
    let woken = false;
    const waiting = b.whenIdle().then(() => (woken = true));
    await flush();
    expect(woken).toBe(false);
    slots.remove('b');
    await waiting;
    expect(woken).toBe(true);
    expect(slots.take()).toBeUndefined();
  });

  it('a late push through a removed camera\'s old sink does not bring it back', () => {
    const slots = new FrameSlots(noEvents);
    const b = slots.sink('b');
    slots.remove('b');
    b.push(frame('b', 2));
    expect(slots.take()).toBeUndefined();
    expect(slots.snapshot()).toEqual({});
  });
});

describe('Pipeline.removeCamera', () => {
  it('does not publish a frame of a removed camera that was in inference, and forgets its counters', async () => {
    let finish: ((c: Classification) => void) | undefined;
    const published: ClassifiedFrame[] = [];
    const pipeline = new Pipeline({
      logger: pino({ level: 'silent' }),
      clock: { now: () => 5_000, monotonic: () => 0, sleep: () => Promise.resolve() },
      classifier: {
        prepare: (data) => Promise.resolve({ data: new Float32Array(3), dims: [1, 3], width: data[0]!, height: 1 } satisfies PreparedTensor),
        classify: () => new Promise<Classification>((resolve) => (finish = resolve)),
      },
      topK: () => 1,
      publish: (r) => published.push(r),
    });
    await pipeline.start();
    pipeline.sink('gone').push(frame('gone', 1));
    for (let i = 0; i < 20 && !finish; i++) await flush();
    expect(finish).toBeDefined();
    pipeline.removeCamera('gone');
    finish!({ top: [{ index: 0, label: 'red', score: 1 }], inferenceMs: 1, scores: [] });
    await flush();
    expect(published).toEqual([]);
    expect(pipeline.counters()).toEqual({});

    // A camera that stays is published as before, with the watch indices it was classified with.
    pipeline.sink('keep').push(frame('keep', 7));
    for (let i = 0; i < 20 && published.length === 0; i++) {
      await flush();
      finish?.({ top: [{ index: 0, label: 'red', score: 1 }], inferenceMs: 1, scores: [] });
    }
    expect(published.map((p) => [p.frame.camera, p.frame.seq, p.watched])).toEqual([['keep', 7, []]]);
    expect(pipeline.counters().keep).toMatchObject({ captured: 1, classified: 1 });
    await pipeline.stop();
  });
});

describe('StatsSchedule', () => {
  it('restarts the ticker with a new interval, and none for 0', async () => {
    const events: string[] = [];
    const schedule = new StatsSchedule({
      intervalSeconds: 60,
      ticker: (ms) => ({
        start: () => Promise.resolve(void events.push(`start ${ms}`)),
        stop: () => Promise.resolve(void events.push(`stop ${ms}`)),
      }),
    });
    await schedule.start();
    await schedule.setInterval(60); // unchanged: nothing happens
    await schedule.setInterval(5);
    await schedule.setInterval(0);
    await schedule.setInterval(10);
    await schedule.stop();
    expect(events).toEqual(['start 60000', 'stop 60000', 'start 5000', 'stop 5000', 'start 10000', 'stop 10000']);
    expect(schedule.intervalSeconds).toBe(10);
  });
});
