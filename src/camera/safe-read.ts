import { constants, type Stats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';

/** What a directory source may read of one file. */
export interface ReadLimits {
  /** A file larger than this is refused (checked before reading, and again while reading). */
  maxBytes: number;
  /** The whole read (stat, open, every chunk) must finish within this. */
  timeoutMs: number;
}

export type ReadOutcome =
  | { kind: 'read'; data: Buffer }
  /**
   * Refused: not a regular file, too large, or too slow. With `pending`, an fs call is still
   * running after the timeout (a hung NFS server holds a libuv thread); it resolves once that
   * call has returned and the file is closed.
   */
  | { kind: 'refused'; reason: string; pending?: Promise<void> };

/** The fs calls used, injectable so tests can make them hang. */
export interface ReadFs {
  stat(path: string): Promise<Stats>;
  open(path: string, flags: number): Promise<FileHandle>;
}

const NODE_FS: ReadFs = { stat: (path) => stat(path), open: (path, flags) => open(path, flags) };

// O_NONBLOCK: opening a FIFO (swapped in after the stat) returns at once instead of waiting for
// a writer forever. O_NOCTTY: a terminal never becomes the daemon's controlling terminal.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

// The first buffer when the size is unknown (procfs and sysfs files say 0); grown by doubling.
const MIN_CHUNK = 64 * 1024;

const MIB = 1024 * 1024;

export function formatBytes(n: number): string {
  return n >= MIB ? `${(n / MIB).toFixed(1)} MiB` : `${n} bytes`;
}

/** What `st` is, in words, when it is not a regular file; undefined when it is one. */
function notRegular(st: Stats): string | undefined {
  if (st.isFile()) return undefined;
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a file';
}

interface Progress {
  /** Set on timeout or stop: the read gives up at its next step and closes the file. */
  cancelled: boolean;
}

const CANCELLED: ReadOutcome = { kind: 'refused', reason: 'cancelled' };

/**
 * Reads one image file, only if it is a regular file (symlinks are followed: a link to an image
 * is an image) of at most `maxBytes`, within `timeoutMs`. Refusals are outcomes, not errors;
 * fs errors (ENOENT, EACCES, EIO, ...) reject. Rejects with `signal.reason` once `signal` aborts,
 * without waiting for a hung fs call.
 */
export async function readImageFile(path: string, limits: ReadLimits, signal: AbortSignal, fs: ReadFs = NODE_FS): Promise<ReadOutcome> {
  signal.throwIfAborted();
  const progress: Progress = { cancelled: false };
  const work = readChecked(path, limits, progress, fs);
  const settled = work.then(
    () => undefined,
    () => undefined,
  );
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), limits.timeoutMs)));
  const aborted = new Promise<'aborted'>((resolve) => {
    onAbort = () => resolve('aborted');
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    const first = await Promise.race([work, timedOut, aborted]);
    if (first === 'timeout' || first === 'aborted') progress.cancelled = true;
    if (first === 'aborted') throw signal.reason;
    if (first === 'timeout') {
      return { kind: 'refused', reason: `not read within ${limits.timeoutMs} ms (read_timeout_ms)`, pending: settled };
    }
    return first;
  } finally {
    clearTimeout(timer);
    // The signal lives as long as the source: a listener per file would pile up.
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}

async function readChecked(path: string, limits: ReadLimits, progress: Progress, fs: ReadFs): Promise<ReadOutcome> {
  // stat before open: opening some devices acts (a /dev/watchdog link would arm the watchdog).
  const before = await fs.stat(path);
  const kind = notRegular(before);
  if (kind !== undefined) return { kind: 'refused', reason: `${kind}, not a regular file` };
  if (before.size > limits.maxBytes) return tooLarge(before.size, limits.maxBytes);
  if (progress.cancelled) return CANCELLED;
  const handle = await fs.open(path, OPEN_FLAGS);
  try {
    if (progress.cancelled) return CANCELLED;
    // The name may have been swapped between stat and open: what counts is what was opened.
    const st = await handle.stat();
    const opened = notRegular(st);
    if (opened !== undefined) return { kind: 'refused', reason: `${opened}, not a regular file` };
    if (st.size > limits.maxBytes) return tooLarge(st.size, limits.maxBytes);
    return await readBounded(handle, st.size, limits.maxBytes, progress);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

function tooLarge(size: number, max: number): ReadOutcome {
  return { kind: 'refused', reason: `${formatBytes(size)}, more than max_file_bytes (${formatBytes(max)})` };
}

/**
 * Reads to EOF, never holding more than `max + 1` bytes: the size from fstat is only a hint (a
 * file still being written grows, procfs files say 0), so the bound is checked on every chunk.
 */
async function readBounded(handle: FileHandle, size: number, max: number, progress: Progress): Promise<ReadOutcome> {
  // One byte beyond the stated size, so a file that grew is noticed without a second buffer.
  let buf = Buffer.allocUnsafe(Math.min(max + 1, Math.max(size + 1, MIN_CHUNK)));
  let length = 0;
  for (;;) {
    if (progress.cancelled) return CANCELLED;
    if (length === buf.length) {
      if (length > max) return { kind: 'refused', reason: `grew past max_file_bytes (${formatBytes(max)}) while being read` };
      const bigger = Buffer.allocUnsafe(Math.min(max + 1, buf.length * 2));
      buf.copy(bigger, 0, 0, length);
      buf = bigger;
    }
    const { bytesRead } = await handle.read(buf, length, buf.length - length, length);
    if (bytesRead === 0) break;
    length += bytesRead;
  }
  // A frame is kept (latest snapshot, slot): do not pin a buffer much larger than the image.
  const data = buf.length - length >= MIN_CHUNK ? Buffer.from(buf.subarray(0, length)) : buf.subarray(0, length);
  return { kind: 'read', data };
}
