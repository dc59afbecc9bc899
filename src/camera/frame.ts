import type { Logger } from '../core/logger.js';
import type { Clock } from '../core/clock.js';

/** Packed 8-bit RGB pixels (3 bytes per pixel, row-major, no padding). */
export interface RawFormat {
  width: number;
  height: number;
}

/**
 * One captured image. Usually still encoded (JPEG, PNG, ...; decoded in preprocessing); with
 * `raw` set, `data` already holds packed RGB24 pixels (e.g. ffmpeg scaling to the model size).
 */
export interface Frame {
  camera: string;
  /** Per-camera sequence number, starting at 1, counting every captured frame. */
  seq: number;
  /** Capture time, epoch milliseconds (Clock.now()). */
  capturedAt: number;
  /** File name for directory sources, device name for cameras. */
  source: string;
  data: Buffer;
  raw?: RawFormat;
}

/** Where a source hands its frames. Implemented by the pipeline. */
export interface FrameSink {
  /** Latest frame wins: a frame the pipeline has not taken yet is replaced and counted as dropped. */
  push(frame: Frame): void;
  /** Resolves once the camera's slot is empty again, so replay sources can avoid drops. */
  whenIdle(): Promise<void>;
  /** A capture failed (the frame never existed); logged and counted, the source carries on. */
  captureError(err: Error): void;
  /**
   * A file the source refused to read (not a regular file, too large, too slow), `reason` in
   * words. Counted per camera; the source logs it and goes on, so the camera's state is not
   * changed by it. Optional: only sources that read files call it.
   */
  skipped?(file: string, reason: string): void;
  /** The source has nothing more to give (a directory without `loop`). */
  end(): void;
  /**
   * The source is restarting its capture (process or connection) after `reason`; `err` says
   * what went wrong. Counted per camera (reconnects, stalls in the last hour) and shown in
   * the camera's status. Call captureError first if the failure itself should be reported.
   */
  restarting(reason: 'stall' | 'exit' | 'error', err: Error): void;
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
