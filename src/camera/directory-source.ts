import { readdir } from 'node:fs/promises';
import type { Dirent } from 'node:fs';
import { join } from 'node:path';
import type { DirectorySourceConfig } from '../config/schema.js';
import { LoopSource } from './loop-source.js';
import type { SourceDeps } from './frame.js';
import { readImageFile, type ReadFs, type ReadLimits, type ReadOutcome } from './safe-read.js';
import { SkipLog } from './skip-log.js';

export type DirectorySourceDeps = SourceDeps<DirectorySourceConfig> & {
  /** The fs calls reads go through; node:fs unless a test makes them hang. */
  fs?: ReadFs;
};

/** What one pass over the directory gave. */
interface Pass {
  emitted: number;
  /** Files skipped or unreadable. */
  failed: number;
  /** The first of those, "name: why", for the camera's status. */
  example: string | undefined;
}

const IMAGE_EXTENSIONS = ['jpg', 'jpeg', 'png', 'webp', 'gif', 'tif', 'tiff', 'bmp', 'avif'];
const IMAGE_NAME = new RegExp(`\\.(${IMAGE_EXTENSIONS.join('|')})$`, 'i');

// A missing or empty directory is often a mount that has not appeared yet (USB stick, NFS):
// keep listing, backing off so a permanently wrong path costs next to nothing.
const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 30_000;

/**
 * Replays the image files of a directory as a camera: name order, at most `fps` frames per
 * second, optionally looping (re-listing each pass so files added meanwhile are picked up).
 *
 * Pacing: the next frame is due `1000/fps` ms after the previous push (monotonic clock), not
 * on a fixed drift-free grid. A replay that had to wait for the pipeline (`realtime: false`)
 * therefore does not burst afterwards to "catch up"; it simply continues at fps.
 */
export class DirectorySource extends LoopSource<DirectorySourceDeps> {
  private seq = 0;
  private lastEmit = Number.NEGATIVE_INFINITY;
  private readonly skips = new SkipLog(this.deps.logger.child({ dir: this.deps.config.path }), () => this.deps.clock.monotonic());
  /**
   * A read abandoned at its timeout whose fs call has not returned yet. No other read starts
   * meanwhile: each hung call holds one of libuv's four threads, which every fs call, DNS lookup
   * and zlib job of the daemon shares.
   */
  private hung: Promise<void> | undefined;

  protected get label(): string {
    return `directory source ${this.deps.config.path}`;
  }

  protected async run(signal: AbortSignal): Promise<void> {
    const { config, sink, clock } = this.deps;
    // whenIdle() has no signal parameter, so a stop() during the wait is raced against this.
    const aborted = new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    let retryMs = RETRY_MIN_MS;
    const backOff = async (): Promise<void> => {
      await clock.sleep(retryMs, signal);
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    };

    while (!signal.aborted) {
      let names: string[];
      try {
        names = await this.list();
      } catch (err) {
        sink.captureError(err as Error);
        await backOff();
        continue;
      }
      this.skips.retain(names);
      const { emitted, failed, example } = await this.replay(names, signal, aborted);
      if (signal.aborted) return;
      if (emitted === 0 && failed > 0) this.noProgress(`no frame from the ${names.length} image file(s) of the last pass (${failed} skipped or unreadable, e.g. ${example})`);
      if (!config.loop) {
        sink.end();
        return;
      }
      // A pass where every file was unreadable would otherwise spin, reporting errors flat out.
      if (emitted === 0) await backOff();
      else retryMs = RETRY_MIN_MS;
    }
  }

  /** Image file names in replay order; throws an Error naming the directory when there are none. */
  private async list(): Promise<string[]> {
    const dir = this.deps.config.path;
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'does not exist' : code === 'ENOTDIR' ? 'is not a directory' : 'cannot be listed';
      throw new Error(`image directory ${dir} ${why} (${(err as Error).message}); retrying`, { cause: err });
    }
    const names = entries
      // Everything but directories: a symlink, FIFO, socket or device named like an image is
      // refused by readImageFile, so it is logged and counted rather than silently missing.
      .filter((e) => !e.isDirectory() && !e.name.startsWith('.') && IMAGE_NAME.test(e.name))
      .map((e) => e.name)
      // Default sort compares UTF-16 code units: the same order on every machine, unlike
      // localeCompare, whose result depends on the ICU data and locale.
      .sort();
    if (names.length === 0) {
      throw new Error(`image directory ${dir} contains no image files (${IMAGE_EXTENSIONS.join(', ')}); retrying`);
    }
    return names;
  }

  /** One pass over `names`. */
  private async replay(names: string[], signal: AbortSignal, aborted: Promise<void>): Promise<Pass> {
    const { config, sink, clock, camera } = this.deps;
    const intervalMs = 1000 / config.fps;
    const limits: ReadLimits = { maxBytes: config.max_file_bytes, timeoutMs: config.read_timeout_ms };
    const pass: Pass = { emitted: 0, failed: 0, example: undefined };
    const failed = (name: string, why: string): void => {
      pass.failed += 1;
      pass.example ??= `${name}: ${why}`;
    };
    for (const name of names) {
      // Waiting before reading keeps capturedAt honest: it is the time the frame was handed over.
      if (!config.realtime) await Promise.race([sink.whenIdle(), aborted]);
      const wait = this.lastEmit + intervalMs - clock.monotonic();
      if (wait > 0) await clock.sleep(wait, signal);
      if (this.hung) await this.waitForHungRead(aborted);
      if (signal.aborted) break;

      const path = join(config.path, name);
      const capturedAt = clock.now();
      let outcome: ReadOutcome;
      try {
        outcome = await readImageFile(path, limits, signal, this.deps.fs);
      } catch (err) {
        if (signal.aborted) break;
        sink.captureError(new Error(`cannot read image file ${path}: ${(err as Error).message}`, { cause: err }));
        failed(name, (err as NodeJS.ErrnoException).code ?? 'unreadable');
        continue;
      }
      if (outcome.kind === 'refused') {
        if (outcome.pending) this.holdWhileHung(outcome.pending);
        // Skipped, not a capture error: the camera stays online while other files give frames.
        this.skips.note(name, outcome.reason);
        sink.skipped?.(name, outcome.reason);
        failed(name, outcome.reason);
        continue;
      }
      // A 0-byte or corrupt file is still a frame: the pipeline's decoder reports it, so the
      // operator sees the bad file instead of it silently vanishing from the replay.
      this.lastEmit = clock.monotonic();
      this.seq += 1;
      sink.push({ camera, seq: this.seq, capturedAt, source: name, data: outcome.data });
      pass.emitted += 1;
    }
    return pass;
  }

  private holdWhileHung(pending: Promise<void>): void {
    const hung = pending.then(() => {
      if (this.hung === hung) this.hung = undefined;
    });
    this.hung = hung;
  }

  private async waitForHungRead(aborted: Promise<void>): Promise<void> {
    const timeout = this.deps.config.read_timeout_ms;
    this.noProgress(`a read gave up after read_timeout_ms (${timeout} ms) and its fs call has still not returned (a hung NFS server or disk?); no further reads until it does`);
    await Promise.race([this.hung, aborted]);
  }

  /**
   * The path a stream's stall watchdog takes: offline with the reason, a stall counted, /healthz
   * failing until a frame comes. Not also a capture error: the skips are counted already, and
   * a status published for the error alone would show no stall yet.
   */
  private noProgress(why: string): void {
    this.deps.sink.restarting('stall', new Error(`directory source ${this.deps.config.path} makes no progress: ${why}`));
  }
}
