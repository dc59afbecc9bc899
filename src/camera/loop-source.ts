import type { FrameSource, SourceDeps } from './frame.js';

/**
 * A source whose capture is one async loop (directory replay, synthetic scenes, fswebcam
 * shots): start() launches it, stop() aborts it and waits until it has exited. A loop that
 * dies of an unexpected error is reported on the camera, never thrown.
 */
export abstract class LoopSource<D extends SourceDeps<unknown>> implements FrameSource {
  private controller: AbortController | undefined;
  private loop: Promise<void> | undefined;

  constructor(protected readonly deps: D) {}

  /** The capture loop; returns when `signal` aborts (or the source has ended). */
  protected abstract run(signal: AbortSignal): Promise<void>;

  /** Names the source in the error reported if its loop dies, e.g. "directory source /srv/x". */
  protected abstract get label(): string;

  // Not `async`: there is nothing to await; the capture loop runs on its own until stop().
  start(): Promise<void> {
    if (this.loop) return Promise.resolve();
    const controller = new AbortController();
    this.controller = controller;
    this.loop = this.run(controller.signal).catch((err: unknown) => this.crashed(err));
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    this.controller?.abort();
    await this.loop;
    this.loop = undefined;
    this.controller = undefined;
  }

  private crashed(err: unknown): void {
    const { logger, camera, sink } = this.deps;
    const error = err instanceof Error ? err : new Error(String(err));
    logger.error({ err: error, camera }, `${this.label} stopped after an unexpected error`);
    try {
      sink.captureError(new Error(`${this.label} stopped: ${error.message}`, { cause: error }));
    } catch {
      // The sink itself failing is already logged above; nothing else can be told.
    }
  }
}
