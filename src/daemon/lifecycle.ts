import type { Logger } from '../core/logger.js';

/** A start stopped by a shutdown request (Lifecycle.abort, ModelManager.abort). */
export class StartAborted extends Error {
  override name = 'StartAborted';
}

export interface Part {
  name: string;
  start(): Promise<unknown>;
  stop(): Promise<void>;
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

  async start(part: Part): Promise<void> {
    if (this.aborted) throw new StartAborted(`stopped while starting (before ${part.name})`);
    await part.start();
    this.started.push(part);
  }

  /** Records a part as running without starting it (it was started elsewhere). */
  adopt(part: Part): void {
    this.started.push(part);
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
