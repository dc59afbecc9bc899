import { openModel } from '../inference/open-model.js';
import type { TensorMeta } from '../inference/protocol.js';
import { createPreprocessor, type InputDType } from '../vision/preprocess.js';
import type { BenchSettings } from './settings.js';
import { percentile } from './stats.js';
import type { TimedSample } from './chart.js';
import { CpuMeter } from './probes.js';

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
  /** Every measured run, for the chart. */
  samples: TimedSample[];
  /** Process CPU time per run (see CpuMeter). */
  cpu_ms_per_frame: number;
}

/**
 * The ceiling: back-to-back runs in an inference worker with the daemon's session settings, on
 * one tensor prepared once. No decoding, no publishing: what the pipeline could reach at best.
 */
export async function measureLimit(s: BenchSettings): Promise<LimitResult> {
  // The label count is not known yet: no labels, so the input alone is checked, and the
  // warm-up run tells the output size.
  const { worker, loaded, inputType, warmUp } = await openModel(
    { logger: s.logger.child({ module: 'bench-limit' }), workerUrl: s.workerUrl },
    { modelPath: s.modelPath, preprocess: s.spec, providers: s.providers, intraOpThreads: s.threads, allowSpinning: s.spinning, deviceId: 0 },
  );
  try {
    const prepared = await createPreprocessor(s.spec, inputType)(s.data[0]!, s.raw);
    // run() transfers the buffer to the worker, so every run gets its own copy.
    const once = () => worker.run(prepared.data.slice(), prepared.dims);
    // Then on the bench's own frame, as before: the measured runs start warm on real data.
    for (let i = 0; i < s.warmup; i++) await once();
    const samples: TimedSample[] = [];
    const cpu = new CpuMeter();
    cpu.start();
    const started = s.clock.monotonic();
    for (let i = 0; i < s.frames; i++) {
      const ms = (await once()).inferenceMs;
      samples.push({ t_ms: s.clock.monotonic() - started, ms });
    }
    const elapsed = s.clock.monotonic() - started;
    const cpuMs = cpu.stopMs();
    const times = samples.map((x) => x.ms);
    return {
      fps: (s.frames * 1000) / elapsed,
      p50_ms: percentile(times, 50),
      p99_ms: percentile(times, 99),
      input: loaded.input,
      inputType,
      provider: loaded.provider,
      outputSize: warmUp.output.length,
      samples,
      cpu_ms_per_frame: cpuMs / s.frames,
    };
  } finally {
    await worker.stop();
  }
}
