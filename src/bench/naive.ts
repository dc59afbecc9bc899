import type { InferenceSession, Tensor } from 'onnxruntime-node';
import { createPreprocessor, type InputDType } from '../vision/preprocess.js';
import { toProbabilities, topK } from '../vision/postprocess.js';
import { intraOpThreadsFor } from '../inference/threads.js';
import type { BenchSettings } from './settings.js';
import { CpuMeter, LoopDelayProbe } from './probes.js';
import type { TimedSample } from './chart.js';

export interface NaiveResult {
  fps: number;
  event_loop_delay_p99_ms: number;
  /** onnxruntime-node's version, known once it is loaded here. */
  ortVersion: string;
  /** Every measured frame (decode + run + top-k), for the chart. */
  samples: TimedSample[];
  /** Process CPU time per frame (see CpuMeter). */
  cpu_ms_per_frame: number;
}

/**
 * The textbook loop, for comparison: decode with sharp, then session.run on the MAIN thread,
 * one frame at a time. onnxruntime-node runs the session synchronously on the calling thread,
 * so the event loop is blocked for one inference per frame and decoding never overlaps it.
 */
export async function measureNaive(s: BenchSettings, inputType: InputDType, labels: string[]): Promise<NaiveResult> {
  // Loaded here only: the other phases keep onnxruntime off the main thread, like the daemon.
  const ort = await import('onnxruntime-node');
  ort.env.logLevel = 'fatal';
  const session = await createSession(ort, s);
  try {
    const prep = createPreprocessor(s.spec, inputType);
    const inputName = session.inputNames[0] ?? '';
    const outputName = session.outputNames[0] ?? '';
    const oneFrame = async (i: number): Promise<void> => {
      const t = await prep(s.data[i % s.data.length]!, s.raw);
      const input = new ort.Tensor(inputType as 'float32', t.data as Float32Array, t.dims);
      const out: Tensor | undefined = (await session.run({ [inputName]: input }))[outputName];
      if (!out) throw new Error(`model produced no output named ${outputName}`);
      topK(toProbabilities(out.data as Float32Array, 'auto'), 5, labels);
    };
    for (let i = 0; i < s.warmup; i++) await oneFrame(i);
    const probe = new LoopDelayProbe();
    probe.start();
    const samples: TimedSample[] = [];
    const cpu = new CpuMeter();
    cpu.start();
    const started = s.clock.monotonic();
    for (let i = 0; i < s.frames; i++) {
      const t = s.clock.monotonic();
      await oneFrame(s.warmup + i);
      const now = s.clock.monotonic();
      samples.push({ t_ms: now - started, ms: now - t });
    }
    const elapsed = s.clock.monotonic() - started;
    return {
      fps: (s.frames * 1000) / elapsed,
      event_loop_delay_p99_ms: probe.stopP99(),
      ortVersion: ort.env.versions.node ?? ort.env.versions.common,
      samples,
      cpu_ms_per_frame: cpu.stopMs() / s.frames,
    };
  } finally {
    await session.release();
  }
}

/** Same session options and provider fallback as the inference worker. */
async function createSession(ort: typeof import('onnxruntime-node'), s: BenchSettings): Promise<InferenceSession> {
  const errors: string[] = [];
  for (const p of s.providers) {
    try {
      return await ort.InferenceSession.create(s.modelPath, {
        executionProviders: [p === 'cpu' ? 'cpu' : { name: p, deviceId: 0 }],
        graphOptimizationLevel: 'all',
        intraOpNumThreads: intraOpThreadsFor(s.threads),
        extra: { session: { intra_op: { allow_spinning: s.spinning ? '1' : '0' } } },
        logSeverityLevel: 4,
      });
    } catch (err) {
      errors.push(`${p}: ${(err as Error).message.split('\n')[0] ?? ''}`);
    }
  }
  throw new Error(`naive baseline cannot load the model: ${errors.join('; ')}`);
}
