import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { buildSlowModel } from '../../src/modelgen/test-models.js';

// buildSlowModel's run time is linear in `repeats`, and what one repeat costs depends on the CPU
// (AVX-512 or AVX2 or NEON, clock, other load): ~0.33 ms at S=224 on an idle Xeon, several times
// that on an AVX2-only core, an ARM board or a loaded machine. Tests that need a run of a given
// length measure this machine first and size the model from that, and derive their timeouts
// from the duration they asked for rather than assuming a fast CPU.

export interface SlowModelFit {
  bytes: Uint8Array;
  size: number;
  repeats: number;
  /** Measured cost of one repeat here (the fastest of the timed probe runs). */
  msPerRepeat: number;
  /** What one session.run should take here: repeats x msPerRepeat. */
  expectedRunMs: number;
}

/** ms per repeat of buildSlowModel({ size }) with `threads` intra-op threads, measured on this machine now. */
export async function measureSlowModel(size = 224, threads = 1): Promise<{ msPerRepeat: number; probeRepeats: number }> {
  const input = new ort.Tensor('float32', new Float32Array(3 * size * size).fill(0.5), [1, 3, size, size]);
  // Doubled until a run takes long enough to time well (50 ms), from a size cheap everywhere.
  for (let repeats = Math.max(1, Math.round(20 * (224 / size) ** 3)); ; repeats *= 2) {
    const session = await ort.InferenceSession.create(buildSlowModel({ size, repeats }), { intraOpNumThreads: threads });
    try {
      await session.run({ input }); // warm-up: first-run allocations
      const runs: number[] = [];
      for (let i = 0; i < 2; i++) {
        const t = performance.now();
        await session.run({ input });
        runs.push(performance.now() - t);
      }
      const fastest = Math.min(...runs);
      if (fastest >= 50 || repeats >= 1 << 16) return { msPerRepeat: fastest / repeats, probeRepeats: repeats };
    } finally {
      await session.release();
    }
  }
}

/**
 * The slow model sized so that one run takes about `targetMs` here (at least; more if the
 * machine gets busier than when it was measured).
 */
export async function slowModelTaking(targetMs: number, opts: { size?: number; threads?: number } = {}): Promise<SlowModelFit> {
  const size = opts.size ?? 224;
  const measured = await measureSlowModel(size, opts.threads ?? 1);
  const repeats = Math.max(1, Math.ceil(targetMs / measured.msPerRepeat));
  return {
    bytes: buildSlowModel({ size, repeats }),
    size,
    repeats,
    msPerRepeat: measured.msPerRepeat,
    expectedRunMs: repeats * measured.msPerRepeat,
  };
}
