import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { Frame, FrameSink } from '../../src/camera/frame.js';
import type { Clock } from '../../src/core/clock.js';
import type { Classification } from '../../src/inference/classifier.js';
import type { PreparedTensor } from '../../src/vision/preprocess.js';
import { FrameDecodeError } from '../../src/vision/preprocess.js';
import { Pipeline, type ClassifiedFrame } from '../../src/daemon/pipeline.js';

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: Error) => void;
}
function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

/** In-process classifier whose every prepare/classify is settled by the test. */
class HandClassifier {
  prepares: { seq: number; d: Deferred<PreparedTensor> }[] = [];
  classifies: { tensor: PreparedTensor; k: number; d: Deferred<Classification> }[] = [];
  inPrepare = 0;
  inClassify = 0;
  maxPrepare = 0;
  maxClassify = 0;

  prepare(data: Buffer): Promise<PreparedTensor> {
    this.maxPrepare = Math.max(this.maxPrepare, ++this.inPrepare);
    const d = deferred<PreparedTensor>();
    this.prepares.push({ seq: data[0]!, d });
    return d.promise.finally(() => this.inPrepare--);
  }

  classify(tensor: PreparedTensor, k: number): Promise<Classification> {
    this.maxClassify = Math.max(this.maxClassify, ++this.inClassify);
    const d = deferred<Classification>();
    this.classifies.push({ tensor, k, d });
    return d.promise.finally(() => this.inClassify--);
  }

  /** Seqs (first data byte) passed to prepare / classify so far. */
  get prepared(): number[] {
    return this.prepares.map((p) => p.seq);
  }
  get classified(): number[] {
    return this.classifies.map((c) => c.tensor.width);
  }

  finishPrepare(seq: number): void {
    // The tensor carries the seq in its width, so the test can follow it through classify.
    this.find(this.prepares, (p) => p.seq === seq).d.resolve({ data: new Float32Array(3), dims: [1, 3], width: seq, height: 480 });
  }
  failPrepare(seq: number): void {
    this.find(this.prepares, (p) => p.seq === seq).d.reject(new FrameDecodeError('cannot decode image: bad'));
  }
  finishClassify(seq: number, inferenceMs = 5): void {
    const c = this.find(this.classifies, (x) => x.tensor.width === seq);
    c.d.resolve({ top: [{ index: seq, label: `label ${seq}`, score: 0.9 }], inferenceMs, scores: [] });
  }
  failClassify(seq: number): void {
    this.find(this.classifies, (x) => x.tensor.width === seq).d.reject(new Error('worker crashed'));
  }
  private find<T>(list: T[], match: (x: T) => boolean): T {
    const found = list.find(match);
    if (!found) throw new Error('no such call');
    return found;
  }
}

function handClock(): Clock & { wall: number; mono: number } {
  const clock = {
    wall: 50_000,
    mono: 0,
    now: () => clock.wall,
    monotonic: () => clock.mono,
    sleep: async () => {},
  };
  return clock;
}

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

function setup(): { pipeline: Pipeline; classifier: HandClassifier; clock: ReturnType<typeof handClock>; published: ClassifiedFrame[] } {
  const classifier = new HandClassifier();
  const clock = handClock();
  const published: ClassifiedFrame[] = [];
  const pipeline = new Pipeline({
    logger: pino({ level: 'silent' }),
    clock,
    classifier,
    topK: () => 3,
    publish: (r) => published.push(r),
  });
  return { pipeline, classifier, clock, published };
}

function push(sink: Pick<FrameSink, 'push'>, camera: string, seq: number, capturedAt = 49_000): void {
  const frame: Frame = { camera, seq, capturedAt, source: `/dev/${camera}`, data: Buffer.from([seq, 0xff]) };
  sink.push(frame);
}

describe('Pipeline', () => {
  it('overlaps decode of the next frame with classification, one of each in flight', async () => {
    const { pipeline, classifier, published } = setup();
    await pipeline.start();
    const cam = pipeline.sink('cam');

    push(cam, 'cam', 1);
    push(cam, 'cam', 2); // waits in the slot: frame 1 is being decoded
    await flush();
    expect(classifier.prepared).toEqual([1]);

    classifier.finishPrepare(1);
    await flush();
    expect(classifier.classified).toEqual([1]);
    expect(classifier.prepared).toEqual([1, 2]); // decoded while 1 is classified
    expect([classifier.inPrepare, classifier.inClassify]).toEqual([1, 1]);

    push(cam, 'cam', 3);
    classifier.finishPrepare(2); // 2 is ready but the worker is busy: it waits, 3 stays in its slot
    await flush();
    expect(classifier.classified).toEqual([1]);
    expect(classifier.prepared).toEqual([1, 2]);
    push(cam, 'cam', 4); // replaces 3
    await flush();

    classifier.finishClassify(1);
    await flush();
    expect(published.map((p) => p.frame.seq)).toEqual([1]);
    expect(classifier.classified).toEqual([1, 2]);
    expect(classifier.prepared).toEqual([1, 2, 4]);

    classifier.finishPrepare(4);
    classifier.finishClassify(2);
    await flush();
    classifier.finishClassify(4);
    await flush();
    expect(published.map((p) => p.frame.seq)).toEqual([1, 2, 4]);
    expect([classifier.maxPrepare, classifier.maxClassify]).toEqual([1, 1]);
    expect(pipeline.idle).toBe(true);
    expect(pipeline.counters()['cam']).toMatchObject({ captured: 4, classified: 3, dropped: 1 });
    await pipeline.stop();
  });

  it('publishes frame metadata, size, top-k and latencies', async () => {
    const { pipeline, classifier, clock, published } = setup();
    await pipeline.start();
    clock.mono = 100;
    push(pipeline.sink('door'), 'door', 7, 49_000);
    await flush();
    clock.mono = 112.5;
    classifier.finishPrepare(7);
    await flush();
    expect(classifier.classifies[0]?.k).toBe(3);
    clock.wall = 49_250;
    classifier.finishClassify(7, 33);
    await flush();

    expect(published).toHaveLength(1);
    const result = published[0]!;
    expect(result.frame).toEqual({ camera: 'door', seq: 7, capturedAt: 49_000, source: '/dev/door' });
    expect(result.frame).not.toHaveProperty('data');
    expect([result.width, result.height]).toEqual([7, 480]);
    expect(result.top).toEqual([{ index: 7, label: 'label 7', score: 0.9 }]);
    expect(result.latency).toEqual({ preprocess: 12.5, inference: 33, total: 250 });
    await pipeline.stop();
  });

  it('counts decode errors per camera and carries on with later frames', async () => {
    const { pipeline, classifier, published } = setup();
    await pipeline.start();
    const a = pipeline.sink('a');
    const b = pipeline.sink('b');
    push(a, 'a', 1);
    push(b, 'b', 1);
    await flush();
    classifier.failPrepare(1); // a's frame
    await flush();
    expect(classifier.prepares).toHaveLength(2); // b's frame is decoded next
    classifier.prepares[1]!.d.resolve({ data: new Float32Array(3), dims: [1, 3], width: 21, height: 1 });
    await flush();
    push(a, 'a', 2);
    await flush();
    classifier.finishPrepare(2);
    classifier.finishClassify(21);
    await flush();
    classifier.finishClassify(2);
    await flush();
    expect(published.map((p) => `${p.frame.camera}${p.frame.seq}`)).toEqual(['b1', 'a2']);
    expect(pipeline.counters()).toMatchObject({
      a: { decodeErrors: 1, classified: 1 },
      b: { decodeErrors: 0, classified: 1 },
    });
    await pipeline.stop();
  });

  it('counts inference errors and carries on', async () => {
    const { pipeline, classifier, published } = setup();
    await pipeline.start();
    const a = pipeline.sink('a');
    push(a, 'a', 1);
    await flush();
    classifier.finishPrepare(1);
    await flush();
    classifier.failClassify(1);
    await flush();
    push(a, 'a', 2);
    await flush();
    classifier.finishPrepare(2);
    await flush();
    classifier.finishClassify(2);
    await flush();
    expect(published.map((p) => p.frame.seq)).toEqual([2]);
    expect(pipeline.counters()['a']).toMatchObject({ inferenceErrors: 1, classified: 1 });
    await pipeline.stop();
  });

  it('stop() publishes the frame in inference and drops the frames not yet in it', async () => {
    const { pipeline, classifier, published } = setup();
    await pipeline.start();
    const cam = pipeline.sink('cam');
    push(cam, 'cam', 1);
    await flush();
    classifier.finishPrepare(1);
    push(cam, 'cam', 2);
    await flush();
    push(cam, 'cam', 3); // untaken: 2 is being decoded, 1 classified
    const waiting = cam.whenIdle();
    expect(classifier.prepared).toEqual([1, 2]);

    let stopped = false;
    const stopping = pipeline.stop().then(() => (stopped = true));
    await flush();
    await waiting; // the source waiting for room is released
    expect(stopped).toBe(false);

    classifier.finishClassify(1);
    await flush();
    expect(published.map((p) => p.frame.seq)).toEqual([1]);
    expect(stopped).toBe(false); // the decode of 2 is still running
    classifier.finishPrepare(2);
    await stopping;

    expect(published.map((p) => p.frame.seq)).toEqual([1]);
    expect(classifier.classified).toEqual([1]); // 2 was decoded but never sent to the worker
    expect(classifier.prepared).toEqual([1, 2]);
    expect(pipeline.counters()['cam']).toMatchObject({ captured: 3, classified: 1, dropped: 2 });
    expect(pipeline.idle).toBe(true);

    push(cam, 'cam', 4); // after stop nothing is taken any more
    await flush();
    expect(classifier.prepared).toEqual([1, 2]);
  });

  it('stop() with a decoded frame waiting: the in-flight one is published, the waiting one dropped', async () => {
    const { pipeline, classifier, published } = setup();
    await pipeline.start();
    const cam = pipeline.sink('cam');
    push(cam, 'cam', 1);
    await flush();
    classifier.finishPrepare(1);
    await flush();
    push(cam, 'cam', 2);
    await flush();
    classifier.finishPrepare(2); // ready, waiting for the worker
    await flush();
    const stopping = pipeline.stop();
    classifier.finishClassify(1);
    await stopping;
    expect(published.map((p) => p.frame.seq)).toEqual([1]);
    expect(classifier.classified).toEqual([1]);
    expect(pipeline.counters()['cam']).toMatchObject({ classified: 1, dropped: 1 });
    expect(pipeline.idle).toBe(true);
  });

  it('a frame pushed before start() is processed once started', async () => {
    const { pipeline, classifier } = setup();
    const cam = pipeline.sink('cam');
    push(cam, 'cam', 1);
    await flush();
    expect(classifier.prepared).toEqual([]);
    await pipeline.start();
    await flush();
    expect(classifier.prepared).toEqual([1]);
    classifier.finishPrepare(1);
    await flush();
    classifier.finishClassify(1);
    await pipeline.stop();
  });

  it('serves cameras round robin', async () => {
    const { pipeline, classifier } = setup();
    await pipeline.start();
    const a = pipeline.sink('a');
    const b = pipeline.sink('b');
    push(a, 'a', 1); // taken at once
    push(a, 'a', 2);
    push(b, 'b', 10);
    await flush();
    classifier.finishPrepare(1);
    await flush();
    expect(classifier.prepared).toEqual([1, 10]); // b before a's second frame
    push(a, 'a', 3); // replaces a2
    classifier.finishClassify(1);
    classifier.finishPrepare(10);
    await flush();
    expect(classifier.prepared).toEqual([1, 10, 3]);
    expect(pipeline.counters()['a']?.dropped).toBe(1);
    classifier.finishPrepare(3);
    classifier.finishClassify(10);
    await flush();
    classifier.finishClassify(3);
    await pipeline.stop();
  });
});
