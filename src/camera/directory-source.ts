import { readdir, readFile } from 'node:fs/promises';
import type { Dirent } from 'node:fs';
import { join } from 'node:path';
import type { DirectorySourceConfig } from '../config/schema.js';
import { LoopSource } from './loop-source.js';
import type { SourceDeps } from './frame.js';

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
export class DirectorySource extends LoopSource<SourceDeps<DirectorySourceConfig>> {
  private seq = 0;
  private lastEmit = Number.NEGATIVE_INFINITY;

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
      const emitted = await this.replay(names, signal, aborted);
      if (signal.aborted) return;
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
      // Symlinks are kept (a link to an image is an image); one pointing at a directory or
      // nowhere fails at readFile and is reported there, naming the path.
      .filter((e) => (e.isFile() || e.isSymbolicLink()) && !e.name.startsWith('.') && IMAGE_NAME.test(e.name))
      .map((e) => e.name)
      // Default sort compares UTF-16 code units: the same order on every machine, unlike
      // localeCompare, whose result depends on the ICU data and locale.
      .sort();
    if (names.length === 0) {
      throw new Error(`image directory ${dir} contains no image files (${IMAGE_EXTENSIONS.join(', ')}); retrying`);
    }
    return names;
  }

  /** One pass over `names`; returns how many frames were pushed. */
  private async replay(names: string[], signal: AbortSignal, aborted: Promise<void>): Promise<number> {
    const { config, sink, clock, camera } = this.deps;
    const intervalMs = 1000 / config.fps;
    let emitted = 0;
    for (const name of names) {
      // Waiting before reading keeps capturedAt honest: it is the time the frame was handed over.
      if (!config.realtime) await Promise.race([sink.whenIdle(), aborted]);
      const wait = this.lastEmit + intervalMs - clock.monotonic();
      if (wait > 0) await clock.sleep(wait, signal);
      if (signal.aborted) break;

      const path = join(config.path, name);
      const capturedAt = clock.now();
      let data: Buffer;
      try {
        data = await readFile(path);
      } catch (err) {
        sink.captureError(new Error(`cannot read image file ${path}: ${(err as Error).message}`, { cause: err }));
        continue;
      }
      if (signal.aborted) break;
      // A 0-byte or corrupt file is still a frame: the pipeline's decoder reports it, so the
      // operator sees the bad file instead of it silently vanishing from the replay.
      this.lastEmit = clock.monotonic();
      this.seq += 1;
      sink.push({ camera, seq: this.seq, capturedAt, source: name, data });
      emitted += 1;
    }
    return emitted;
  }

}
