import type { Logger } from '../ops/logger.js';
import type { Clock } from '../ops/clock.js';

/** One captured image, still encoded (JPEG, PNG, ...): decoding happens in preprocessing. */
export interface Frame {
  camera: string;
  /** Per-camera sequence number, starting at 1, counting every captured frame. */
  seq: number;
  /** Capture time, epoch milliseconds (Clock.now()). */
  capturedAt: number;
  /** File name for directory sources, device name for cameras. */
  source: string;
  data: Buffer;
}

/** Where a source hands its frames. Implemented by the pipeline. */
export interface FrameSink {
  /** Latest frame wins: a frame the pipeline has not taken yet is replaced and counted as dropped. */
  push(frame: Frame): void;
  /** Resolves once the camera's slot is empty again, so replay sources can avoid drops. */
  whenIdle(): Promise<void>;
  /** A capture failed (the frame never existed); logged and counted, the source carries on. */
  captureError(err: Error): void;
  /** The source has nothing more to give (a directory without `loop`). */
  end(): void;
}

/** A camera. `start()` returns once capture is running; `stop()` once nothing is left running. */
export interface FrameSource {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface SourceDeps<C> {
  camera: string;
  config: C;
  logger: Logger;
  clock: Clock;
  sink: FrameSink;
}
