import { InferenceWorker } from '../inference/inference-worker.js';
import { checkModel } from '../inference/model-check.js';
import type { TensorMeta } from '../inference/protocol.js';
import { createPreprocessor, type InputDType } from '../vision/preprocess.js';
import type { BenchSettings } from './settings.js';
import { percentile } from './stats.js';

export interface LimitResult {
  fps: number;
  /** Bare session.run, as timed inside the worker. */
  p50_ms: number;
  p99_ms: number;
  input: TensorMeta;
  inputType: InputDType;
  provider: string;
  /** Values per frame in the model output (the default labels are generated to match). */
  outputSize: number;
}

/**
 * The ceiling: back-to-back runs in an inference worker with the daemon's session settings, on
 * one tensor prepared once. No decoding, no publishing: what the pipeline could reach at best.
 */
export async function measureLimit(s: BenchSettings): Promise<LimitResult> {
  const worker = new InferenceWorker({
    logger: s.logger.child({ module: 'bench-limit' }),
    workerUrl: s.workerUrl,
    config: { modelPath: s.modelPath, providers: s.providers, intraOpThreads: s.threads, deviceId: 0 },
  });
  const loaded = await worker.start();
  try {
    // The label count is not known yet: check the input only (a symbolic output skips the
    // class-count check); the warm-up runs tell the output size.
    const inputType = checkModel({ ...loaded, output: { ...loaded.output, shape: ['classes'] } }, s.spec, 0);
    const prepared = await createPreprocessor(s.spec, inputType)(s.data[0]!, s.raw);
    // run() transfers the buffer to the worker, so every run gets its own copy.
    const once = () => worker.run(prepared.data.slice(), prepared.dims);
    let outputSize = 0;
    for (let i = 0; i < Math.max(1, s.warmup); i++) outputSize = (await once()).output.length;
    const times: number[] = [];
    const started = s.clock.monotonic();
    for (let i = 0; i < s.frames; i++) times.push((await once()).inferenceMs);
    const elapsed = s.clock.monotonic() - started;
    return {
      fps: (s.frames * 1000) / elapsed,
      p50_ms: percentile(times, 50),
      p99_ms: percentile(times, 99),
      input: loaded.input,
      inputType,
      provider: loaded.provider,
      outputSize,
    };
  } finally {
    await worker.stop();
  }
}
