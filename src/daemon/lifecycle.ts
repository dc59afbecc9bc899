import type { Logger } from '../core/logger.js';

/** A start stopped by a shutdown request (Lifecycle.abort, ModelManager.abort). */
export class StartAborted extends Error {
  override name = 'StartAborted';
}

export interface Part {
  name: string;
  start(): Promise<unknown>;
  stop(): Promise<void>;
  /** Recorded before its start, so it is stopped even when the start fails or is aborted (it holds what it made so far). */
  stopOnFailedStart?: boolean;
}

/**
 * Starts parts in order and stops the started ones in reverse, each stop in its own
 * try/catch so one failing part cannot keep the others running.
 */
export class Lifecycle {
  private readonly started: Part[] = [];
  private aborted = false;

  constructor(private readonly logger: Logger) {}

  /** A shutdown during start: the parts not started yet are not started (start() throws StartAborted). */
  abort(): void {
    this.aborted = true;
  }

  /** Starts `part` and records it; resolves with it, so the root names each part once. */
  async start<P extends Part>(part: P): Promise<P> {
    if (this.aborted) throw new StartAborted(`stopped while starting (before ${part.name})`);
    if (part.stopOnFailedStart) this.started.push(part);
    await part.start();
    if (!part.stopOnFailedStart) this.started.push(part);
    return part;
  }

  async stopAll(): Promise<void> {
    while (this.started.length > 0) {
      const part = this.started.pop()!;
      try {
        await part.stop();
        this.logger.debug({ part: part.name }, 'stopped');
      } catch (err) {
        this.logger.error({ part: part.name, err: (err as Error).message }, 'error while stopping');
      }
    }
  }
}
