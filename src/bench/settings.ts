import type { Logger } from '../core/logger.js';
import type { Clock } from '../core/clock.js';
import type { ExecutionProvider, PreprocessSpec } from '../config/schema.js';
import type { RawFormat } from '../camera/frame.js';

export type BenchSource = 'jpeg' | 'raw';

/** What every phase shares: one model, one thread setting, one set of frames. */
export interface BenchSettings {
  logger: Logger;
  clock: Clock;
  workerUrl: URL;
  modelPath: string;
  spec: PreprocessSpec;
  providers: ExecutionProvider[];
  /** onnxruntime intra-op threads (0: onnxruntime picks), as model.intra_op_threads. */
  threads: number;
  /** session.intra_op.allow_spinning, as model.intra_op_spinning. */
  spinning: boolean;
  /** Measured frames per phase (after warm-up). */
  frames: number;
  /** Pipeline phase only: frames per second the source offers (a camera's rate); 0: full rate. */
  rate: number;
  /** Unmeasured runs first: lazy allocations and the CPU's clocks settle. */
  warmup: number;
  source: BenchSource;
  /** Frame bytes, cycled through. */
  data: Buffer[];
  /** Set for raw frames (packed RGB24 at the model input size). */
  raw?: RawFormat;
}
