import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { pino } from 'pino';
import { InferenceWorker } from '../../src/inference/inference-worker.js';
import { tempDir } from '../helpers/fixtures.js';
import { slowModelTaking } from '../helpers/slow-model.js';

// The compiled worker entry (built by `pretest`): the same file the daemon runs.
const workerUrl = new URL('../../dist/inference/worker.js', import.meta.url);

/** Largest gap between 5 ms interval ticks while `work` runs. */
async function maxTimerGap(work: () => Promise<unknown>): Promise<{ gap: number; elapsed: number }> {
  let last = performance.now();
  let gap = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    gap = Math.max(gap, now - last);
    last = now;
  }, 5);
  const t0 = performance.now();
  await work();
  const elapsed = performance.now() - t0;
  clearInterval(timer);
  return { gap: Math.max(gap, performance.now() - last), elapsed };
}

describe('inference worker', () => {
  let modelPath: string;
  let worker: InferenceWorker;
  const input = (): Float32Array => new Float32Array(3 * 224 * 224).fill(0.5);

  beforeAll(async () => {
    modelPath = join(tempDir(), 'slow.onnx');
    // ~200 ms a run, sized for this machine (a fixed size took 200 ms on an idle Xeon and
    // several times that on a slow or busy one).
    writeFileSync(modelPath, (await slowModelTaking(200)).bytes);
    worker = new InferenceWorker({
      logger: pino({ level: 'silent' }),
      workerUrl,
      config: { modelPath, providers: ['cpu'], intraOpThreads: 1, deviceId: 0 },
    });
    await worker.start();
  });

  afterAll(async () => {
    await worker.stop();
  });

  it('keeps timers running while the model infers', async () => {
    const inWorker = await maxTimerGap(async () => {
      for (let i = 0; i < 4; i++) await worker.run(input(), [1, 3, 224, 224]);
    });
    // Control: the same model on the main thread stalls the timers for a whole run, which shows
    // this measurement can see blocking at all.
    const session = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 1 });
    const onMain = await maxTimerGap(async () => {
      for (let i = 0; i < 2; i++) await session.run({ input: new ort.Tensor('float32', input(), [1, 3, 224, 224]) });
    });
    await session.release();
    const perRun = onMain.elapsed / 2;
    expect(perRun).toBeGreaterThan(40);
    expect(onMain.gap).toBeGreaterThan(perRun * 0.8);
    expect(inWorker.elapsed).toBeGreaterThan(perRun * 3);
    expect(inWorker.gap).toBeLessThan(perRun / 2);
  });

  it('transfers the input tensor instead of copying it', async () => {
    const data = input();
    const result = await worker.run(data, [1, 3, 224, 224]);
    expect(data.byteLength).toBe(0); // detached: its memory moved to the worker
    expect(result.output).toHaveLength(8);
    expect(result.output.every(Number.isFinite)).toBe(true);
    expect(result.inferenceMs).toBeGreaterThan(0);
  });

  it('reports a run with the wrong shape as an error and keeps serving', async () => {
    await expect(worker.run(new Float32Array(10), [1, 10])).rejects.toThrow(/inference failed/);
    const ok = await worker.run(input(), [1, 3, 224, 224]);
    expect(ok.output).toHaveLength(8);
  });

  it('reports the active provider and each unavailable one', async () => {
    const fallback = new InferenceWorker({
      logger: pino({ level: 'silent' }),
      workerUrl,
      config: { modelPath, providers: ['tensorrt', 'cuda', 'cpu'], intraOpThreads: 1, deviceId: 0 },
    });
    const loaded = await fallback.start();
    await fallback.stop();
    // This machine has no GPU libraries (a GPU machine would load tensorrt or cuda here).
    expect(loaded.provider).toBe('cpu');
    expect(loaded.failures.map((f) => f.provider)).toEqual(['tensorrt', 'cuda']);
    expect(loaded.failures[0]?.error).toMatch(/TensorRT/i);
    expect(loaded.input).toEqual({ name: 'input', type: 'float32', shape: [1, 3, 224, 224] });
  });
});
