import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { pipeline } from 'node:stream/promises';

/** Streaming sha256 (optionally copying the file on the way) with a progress bar for big files. */

/** Where progress goes: stderr in the CLI. */
export interface ProgressSink {
  write(text: string): void;
  /** A terminal gets one redrawn bar; logs and pipes get a few plain lines instead. */
  isTTY: boolean;
}

export interface HashedFile {
  size: number;
  sha256: string;
}

/** Files above this get a progress bar; smaller ones hash faster than a bar could be read. */
export const PROGRESS_THRESHOLD = 8 * 1024 * 1024;
const BAR_WIDTH = 30;
const REDRAW_MS = 100;

function mb(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(1);
}

function progressReporter(sink: ProgressSink | undefined, label: string, total: number): { tick(n: number): void; done(): void } {
  if (!sink || total <= PROGRESS_THRESHOLD) return { tick: () => undefined, done: () => undefined };
  let seen = 0;
  let lastDraw = 0;
  let lastQuarter = 0;
  const draw = (): void => {
    const share = Math.min(1, seen / total);
    const filled = Math.round(share * BAR_WIDTH);
    sink.write(`\r${label} [${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${Math.floor(share * 100)}% ${mb(seen)}/${mb(total)} MB`);
  };
  return {
    tick(n) {
      seen += n;
      if (sink.isTTY) {
        const now = Date.now();
        if (now - lastDraw >= REDRAW_MS) {
          lastDraw = now;
          draw();
        }
        return;
      }
      // Non-TTY: a line per quarter keeps CI logs readable and still shows it is moving.
      const quarter = Math.floor((seen / total) * 4);
      if (quarter > lastQuarter && quarter < 4) {
        lastQuarter = quarter;
        sink.write(`${label}: ${quarter * 25}% (${mb(seen)}/${mb(total)} MB)\n`);
      }
    },
    done() {
      if (sink.isTTY) {
        draw();
        sink.write('\n');
      } else {
        sink.write(`${label}: 100% (${mb(seen)} MB)\n`);
      }
    },
  };
}

/**
 * sha256 and size of `path`, read once as a stream (models can be hundreds of MB on a Pi). With
 * `copyTo`, the same bytes are written there (never overwriting), so the hash describes exactly
 * what was copied.
 */
export async function hashFile(path: string, opts: { progress?: ProgressSink; label?: string; copyTo?: string } = {}): Promise<HashedFile> {
  const total = (await stat(path)).size;
  const reporter = progressReporter(opts.progress, opts.label ?? `hashing ${basename(path)}`, total);
  const hash = createHash('sha256');
  let size = 0;
  const account = (chunk: Buffer): void => {
    hash.update(chunk);
    size += chunk.length;
    reporter.tick(chunk.length);
  };
  if (opts.copyTo) {
    await pipeline(
      createReadStream(path),
      async function* (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          account(chunk);
          yield chunk;
        }
      },
      createWriteStream(opts.copyTo, { flags: 'wx' }),
    );
  } else {
    for await (const chunk of createReadStream(path)) account(chunk as Buffer);
  }
  reporter.done();
  return { size, sha256: hash.digest('hex') };
}
