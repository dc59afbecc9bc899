import type { Logger } from '../core/logger.js';
import type { Clock } from '../core/clock.js';
import { isNoSpace, writeUpdateState, type UpdateState, type WriteStatus } from './update-state.js';

export interface StateWriterDeps {
  logger: Logger;
  clock: Clock;
  /** state_dir/update-state.json */
  file: string;
  /** Retry period of a write that failed for lack of space; default 5 s. */
  retryMs?: number;
}

/**
 * The one owner of the update state in memory and on disk, for the model store: mutations run
 * one at a time, each written atomically and durably before it is adopted. A write that finds
 * no room (ENOSPC, EDQUOT) is adopted in memory, reported (status(), onStatus) and retried
 * every retryMs until it goes through, unless it is `required` (see the top of model-store.ts).
 */
export class StateWriter {
  private current: UpdateState = { refused: {} };
  private queue: Promise<unknown> = Promise.resolve();
  private write: WriteStatus = { pending: false, failures: 0 };
  private listener: ((status: WriteStatus) => void) | undefined;
  private readonly retry = new AbortController();
  private retrying: Promise<void> | undefined;

  constructor(private readonly deps: StateWriterDeps) {}

  /** The state in force (the file's, unless a write waits for room). */
  get state(): UpdateState {
    return this.current;
  }

  /** Takes `state` as it is on disk already (read at start, nothing to write). */
  adopt(state: UpdateState): void {
    this.current = state;
  }

  status(): WriteStatus {
    return { ...this.write };
  }

  /** Told whenever status() changes (a write failed for lack of space, or went through later). */
  onStatus(listener: (status: WriteStatus) => void): void {
    this.listener = listener;
  }

  /** Runs mutations one at a time: each reads the state the previous one committed. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Writes the state file atomically and durably, then adopts it. Without room the state is
   * adopted in memory and the write retried later, unless `required`: then it throws and
   * nothing changes.
   */
  async commit(next: UpdateState, opts: { required?: boolean } = {}): Promise<void> {
    const { logger, file } = this.deps;
    try {
      await writeUpdateState(file, next);
    } catch (err) {
      if (!isNoSpace(err)) throw err;
      this.write = { pending: opts.required ? this.write.pending : true, failures: this.write.failures + 1, error: (err as Error).message };
      logger.error(
        { err: (err as Error).message, file, failures: this.write.failures, required: opts.required === true },
        opts.required ? 'cannot write the update state: no space left' : 'cannot write the update state: no space left; kept in memory, retrying',
      );
      if (!opts.required) {
        this.current = next;
        this.retryLater();
      }
      this.listener?.(this.status());
      if (opts.required) throw err;
      return;
    }
    this.current = next;
    if (this.write.pending || this.write.error !== undefined) {
      if (this.write.pending) logger.info({ file, failures: this.write.failures }, 'update state written after waiting for space');
      this.write = { pending: false, failures: this.write.failures };
      this.listener?.(this.status());
    }
  }

  /** Ends the retries; one last try, so a write still waiting for room is not lost at a planned restart. */
  async stop(): Promise<void> {
    this.retry.abort();
    await this.retrying;
    await this.queue;
    if (this.write.pending) await this.serial(() => this.commit(this.current)).catch(() => undefined);
  }

  /** Retries a pending write every retryMs until it goes through (or the writer stops). */
  private retryLater(): void {
    if (this.retrying || this.retry.signal.aborted) return;
    const { clock } = this.deps;
    const signal = this.retry.signal;
    this.retrying = (async () => {
      while (this.write.pending && !signal.aborted) {
        await clock.sleep(this.deps.retryMs ?? 5_000, signal);
        if (signal.aborted) break;
        await this.serial(async () => {
          if (this.write.pending) await this.commit(this.current);
        }).catch((err: unknown) => this.deps.logger.error({ err: (err as Error).message }, 'update state write retry failed'));
      }
    })().finally(() => (this.retrying = undefined));
  }
}
