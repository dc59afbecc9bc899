import type { Clock } from '../core/clock.js';

// The HTTP-level rules of a model download, free of files: how failures are described and
// classified, how long to back off, how to read Content-Range and pick the If-Range
// validator, and when a silent connection counts as stalled.

/** `disk-full`: ENOSPC or EDQUOT while writing; the partial file is removed then (not kept for a resume). */
export type DownloadFailure = 'http' | 'network' | 'stall' | 'size' | 'range' | 'sha256' | 'aborted' | 'busy' | 'invalid' | 'local' | 'disk-full';

/** A failed download or attempt; the message names the (redacted) URL and the reason. */
export class DownloadError extends Error {
  constructor(
    readonly reason: DownloadFailure,
    message: string,
    readonly retryable: boolean,
    /** From Retry-After, when the server said how long to wait. */
    readonly retryAfterMs?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'DownloadError';
  }
}

/** Equal jitter: half the exponential step fixed, half random, so retries never bunch up. */
export function backoffDelay(failures: number, baseMs: number, maxMs: number, random: () => number): number {
  const step = Math.min(maxMs, baseMs * 2 ** Math.min(30, Math.max(0, failures - 1)));
  return Math.round(step / 2 + random() * (step / 2));
}

/** `bytes 100-199/1000` (total may be `*`); undefined when malformed. */
export function parseContentRange(h: string | null): { start: number; end: number; total: number | undefined } | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(h?.trim() ?? '');
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  const total = m[3] === '*' ? undefined : Number(m[3]);
  if (end < start || (total !== undefined && end >= total)) return undefined;
  return { start, end, total };
}

/** Strong ETag, else Last-Modified: what If-Range accepts (a weak ETag never matches). */
export function rangeValidator(headers: Headers): string | null {
  const etag = headers.get('etag');
  if (etag && !etag.startsWith('W/')) return etag;
  return headers.get('last-modified');
}

/** Retry-After in ms (seconds or an HTTP date), capped; undefined when absent or malformed. */
export function retryAfterMs(h: string | null, now: number, maxMs: number): number | undefined {
  if (!h) return undefined;
  const ms = /^\d+$/.test(h.trim()) ? Number(h.trim()) * 1000 : Date.parse(h) - now;
  return Number.isFinite(ms) ? Math.min(maxMs, Math.max(0, ms)) : undefined;
}

/** Aborts (via `onStall`) when `touch()` was not called for `timeoutMs`; time from deps.clock. */
export function startWatchdog(clock: Clock, timeoutMs: number, onStall: () => void): { touch(): void; stop(): void } {
  let last = clock.monotonic();
  const stopped = new AbortController();
  const loop = async (): Promise<void> => {
    // Bounded: each pass sleeps until the current deadline; it ends at a stall or at stop().
    while (!stopped.signal.aborted) {
      const left = last + timeoutMs - clock.monotonic();
      if (left <= 0) return onStall();
      await clock.sleep(left, stopped.signal);
    }
  };
  void loop();
  return { touch: () => void (last = clock.monotonic()), stop: () => stopped.abort() };
}

