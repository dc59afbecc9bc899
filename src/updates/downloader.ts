import { createHash, type Hash } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import { cleanTempDir, fsyncDir, fsyncFile, hashPrefix, partPaths, fileSize, readSidecar, removeQuietly, writeAllAt, writeSidecar, type PartPaths } from './download-part.js';
import { describeFetchError, redactUrl, splitCredentials } from './http-poll.js';
import { updatesFetch } from './http-client.js';
import { isDiskFull } from './disk-space.js';
import { DownloadError, backoffDelay, parseContentRange, rangeValidator, retryAfterMs, startWatchdog } from './download-protocol.js';

export { DownloadError, backoffDelay, parseContentRange, rangeValidator, type DownloadFailure } from './download-protocol.js';

// Model downloads for over-the-air updates: resumable (Range + If-Range, across restarts via
// the sidecar in download-part.ts), retried with backoff, size-capped, and sha256-verified
// before the file gets its real name. Hashing: incremental over the bytes as they are written;
// the Hash object is kept across attempts within the process, and after a restart the prefix
// already on disk is hashed once before the resumed request. node:crypto cannot export a
// hash's internal state, so persisting it would mean a hand-written (slower) sha256; reading
// the prefix once per process start costs less than re-reading the whole file after the end.

export interface DownloaderConfig {
  /** No byte for this long aborts the attempt (updates.download.timeout_ms). */
  timeout_ms: number;
  /** Failed attempts retried before giving up (updates.download.retries). */
  retries: number;
  /** Exponential backoff with jitter between attempts; default 1 s doubling up to 60 s. */
  backoff?: { base_ms: number; max_ms: number };
}

export interface DownloaderDeps {
  logger: Logger;
  clock: Clock;
  /** Default: the pinned undici of http-client.ts (never the runtime's global fetch). */
  fetch?: typeof fetch;
  config: DownloaderConfig;
  /** [0, 1) for the backoff jitter; Math.random by default. */
  random?: () => number;
}

export interface DownloadRequest {
  url: string;
  /** Declared size in bytes (from the manifest): more is cut off, less is incomplete. */
  size: number;
  /** Expected sha256, hex. */
  sha256: string;
  /** Final path; `<dest>.part` and `<dest>.part.json` live next to it while downloading. */
  dest: string;
  onProgress?: (p: { received: number; total: number }) => void;
  signal?: AbortSignal;
}

export interface DownloadResult {
  path: string;
  size: number;
  attempts: number;
  /** Body bytes received over the network by this call (less than `size` after a resume). */
  fetchedBytes: number;
  /** The first byte offset this call resumed from (0: no resume). */
  resumedFrom: number;
}

/** Per-call state shared by the attempts of one download(). */
interface Job {
  req: DownloadRequest;
  paths: PartPaths;
  safeUrl: string;
  name: string;
  /** sha256 over the first `bytes` bytes of the .part, when this process knows it. */
  hash: { hash: Hash; bytes: number } | undefined;
  /** The .part was written by one response from byte 0 (a sha mismatch is then final). */
  fromZero: boolean;
  fetched: number;
  resumedFrom: number;
}

export class Downloader {
  private readonly log: Logger;
  /** Destinations being downloaded now: two writers on one .part would corrupt it. */
  private readonly active = new Set<string>();

  constructor(private readonly deps: DownloaderDeps) {
    this.log = deps.logger.child({ module: 'downloader' });
  }

  /** Startup: empties `dir` except the finished files, .part and .part.json of the dests in `keep`. */
  async cleanTemp(dir: string, keep: ReadonlySet<string>): Promise<string[]> {
    const removed = await cleanTempDir(dir, keep);
    if (removed.length > 0) this.log.info({ dir, removed }, 'removed stale download temp files');
    return removed;
  }

  async download(req: DownloadRequest): Promise<DownloadResult> {
    const safeUrl = redactUrl(req.url);
    if (!/^https?:\/\/./i.test(req.url) || !URL.canParse(req.url)) throw new DownloadError('invalid', `download of ${safeUrl}: not an http(s) URL`, false);
    if (!Number.isSafeInteger(req.size) || req.size < 0 || !/^[0-9a-f]{64}$/i.test(req.sha256)) {
      throw new DownloadError('invalid', `download of ${safeUrl}: invalid declared size or sha256`, false);
    }
    const dest = resolve(req.dest);
    if (this.active.has(dest)) throw new DownloadError('busy', `download of ${safeUrl}: ${dest} is already being downloaded`, false);
    this.active.add(dest);
    try {
      await fsp.mkdir(dirname(dest), { recursive: true });
      const job: Job = { req: { ...req, dest, sha256: req.sha256.toLowerCase() }, paths: partPaths(dest), safeUrl, name: basename(dest), hash: undefined, fromZero: false, fetched: 0, resumedFrom: 0 };
      return await this.run(job);
    } finally {
      this.active.delete(dest);
    }
  }

  private async run(job: Job): Promise<DownloadResult> {
    const { req, safeUrl } = job;
    const { retries, backoff = { base_ms: 1000, max_ms: 60_000 } } = this.deps.config;
    // Killed after the rename, before the caller took the file? Re-hashing beats re-fetching.
    if ((await fileSize(req.dest)) === req.size && (await hashPrefix(req.dest, req.size, req.signal)).digest('hex') === req.sha256) {
      await removeQuietly(job.paths.part, job.paths.sidecar);
      return { path: req.dest, size: req.size, attempts: 0, fetchedBytes: 0, resumedFrom: 0 };
    }
    let failures = 0;
    let freshRetryUsed = false;
    // Bounded: every pass either returns, throws, or counts a failure (at most retries + 1),
    // except the single fresh download after a sha mismatch of a resumed file.
    for (let attempt = 1; attempt <= retries + 2; attempt++) {
      if (req.signal?.aborted) throw this.classify(job, req.signal.reason);
      const state = await this.prepare(job);
      try {
        if (!state.complete) await this.attempt(job, state.offset, state.validator);
        const actual = job.hash?.bytes === req.size ? job.hash.hash.digest('hex') : (await hashPrefix(job.paths.part, req.size)).digest('hex');
        job.hash = undefined;
        if (actual === req.sha256) return await this.commit(job, attempt);
        // Never retried from the same bytes. A file assembled from several responses (or
        // processes) may hold a bad prefix (a torn tail after power loss, or a server that
        // changed the file under the same validator): one fresh download is worth it. One
        // response from byte 0 that does not match is what the server serves: final.
        await removeQuietly(job.paths.part, job.paths.sidecar);
        const err = new DownloadError('sha256', `sha256 mismatch for ${job.name} (${safeUrl}): expected ${req.sha256}, got ${actual}`, false);
        if (job.fromZero || freshRetryUsed) throw err;
        freshRetryUsed = true;
        this.log.warn({ url: safeUrl, err: err.message }, 'resumed download failed its sha256 check; downloading once more from byte 0');
      } catch (e) {
        const err = this.classify(job, e);
        if (err.reason === 'disk-full') {
          // Keeping the bytes for a resume would keep the disk full, and every other writer in
          // state_dir (the settings, the MQTT outbox) failing with it: give the space back.
          await removeQuietly(job.paths.part, job.paths.sidecar, job.paths.sidecarTmp).catch(() => undefined);
          this.log.warn({ url: safeUrl, err: err.message }, 'disk full: partial download removed');
          throw err;
        }
        failures++;
        if (!err.retryable || failures > retries) {
          if (!err.retryable || retries === 0) throw err;
          throw new DownloadError(err.reason, `download of ${job.name} failed after ${failures} attempts: ${err.message}`, false, undefined, { cause: err });
        }
        const delayMs = err.retryAfterMs ?? backoffDelay(failures, backoff.base_ms, backoff.max_ms, this.deps.random ?? Math.random);
        this.log.warn({ url: safeUrl, attempt, reason: err.reason, err: err.message, delayMs }, 'download attempt failed; retrying');
        await this.deps.clock.sleep(delayMs, req.signal);
      }
    }
    throw new DownloadError('network', `download of ${job.name} from ${safeUrl}: gave up after ${retries + 2} attempts`, false);
  }

  /** Where to resume: the .part's length when the sidecar says it is this file, else 0. */
  private async prepare(job: Job): Promise<{ offset: number; validator: string | null; complete: boolean }> {
    const { req, paths } = job;
    const sc = await readSidecar(paths.sidecar);
    const have = await fileSize(paths.part);
    const same = sc !== undefined && sc.url === job.safeUrl && sc.size === req.size && sc.sha256 === req.sha256 && sc.validator !== null;
    if (!same || have === undefined || have > req.size) {
      if (sc || have !== undefined) this.log.info({ url: job.safeUrl, bytes: have, sidecar: sc !== undefined }, 'discarding a partial download that cannot be resumed');
      await removeQuietly(paths.part, paths.sidecar);
      job.hash = undefined;
      return { offset: 0, validator: null, complete: false };
    }
    if (job.hash?.bytes !== have) {
      // Bytes from another process (or a failed write): its hash is unknown here.
      job.hash = undefined;
      job.fromZero = false;
    }
    return { offset: have, validator: sc.validator, complete: have === req.size };
  }

  /** One HTTP request, appending to the .part; throws when the file is not complete. */
  private async attempt(job: Job, offset: number, validator: string | null): Promise<void> {
    const { req, paths, safeUrl } = job;
    let hash = job.hash?.hash;
    // Hash the prefix before the request: doing it once headers arrived would look like a stall.
    if (offset > 0 && !hash) hash = await hashPrefix(paths.part, offset, req.signal);
    const target = splitCredentials(req.url);
    const headers: Record<string, string> = { 'accept-encoding': 'identity' }; // byte ranges of the file itself
    if (target.authorization) headers.authorization = target.authorization;
    if (offset > 0 && validator) Object.assign(headers, { range: `bytes=${offset}-`, 'if-range': validator });

    const ac = new AbortController();
    const onAbort = (): void => ac.abort(new DownloadError('aborted', `download of ${safeUrl}: aborted`, false));
    req.signal?.addEventListener('abort', onAbort, { once: true });
    const timeoutMs = this.deps.config.timeout_ms;
    const watchdog = startWatchdog(this.deps.clock, timeoutMs, () =>
      ac.abort(new DownloadError('stall', `${safeUrl}: no data for ${timeoutMs} ms at byte ${job.hash?.bytes ?? offset}`, true)),
    );
    // fetch() and reads reject with the abort reason when we aborted; else it is the network.
    const net = (e: unknown): DownloadError =>
      ac.signal.reason instanceof DownloadError ? ac.signal.reason : new DownloadError('network', `${safeUrl}: ${describeFetchError(e, req.url)}`, true, undefined, { cause: e });
    try {
      const res = await (this.deps.fetch ?? updatesFetch)(target.url, { headers, signal: ac.signal }).catch((e: unknown) => Promise.reject(net(e)));
      watchdog.touch();
      const fail = async (err: DownloadError, discard = false): Promise<never> => {
        await res.body?.cancel().catch(() => undefined);
        if (discard) await removeQuietly(paths.part, paths.sidecar);
        throw err;
      };
      let pos = offset;
      if (res.status === 206 && offset > 0) {
        const cr = parseContentRange(res.headers.get('content-range'));
        if (!cr || cr.start !== offset || (cr.total !== undefined && cr.total !== req.size)) {
          await fail(new DownloadError('range', `${safeUrl}: Content-Range "${res.headers.get('content-range')}" does not continue byte ${offset} of ${req.size}`, true), true);
        }
        if (job.resumedFrom === 0) job.resumedFrom = offset;
      } else if (res.status === 200) {
        // A 200 to a Range + If-Range request: the file changed (or Range is not supported).
        if (offset > 0) this.log.info({ url: safeUrl, offset }, 'server sent the whole file (changed, or no Range support): starting over');
        pos = 0;
        hash = createHash('sha256');
        await this.startOver(job, rangeValidator(res.headers));
        watchdog.touch();
      } else if (res.status === 416) {
        await fail(new DownloadError('range', `${safeUrl}: HTTP 416 for bytes=${offset}- (the server's file is shorter): starting over`, true), true);
      } else {
        const retryable = res.status >= 500 || res.status === 408 || res.status === 429;
        const after = retryAfterMs(res.headers.get('retry-after'), this.deps.clock.now(), this.deps.config.backoff?.max_ms ?? 60_000);
        await fail(new DownloadError('http', `${safeUrl}: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`, retryable, after));
      }
      const declared = res.headers.get('content-length');
      if (declared !== null && Number(declared) !== req.size - pos) {
        await fail(new DownloadError('size', `${safeUrl}: Content-Length ${declared} disagrees with the declared size (${req.size - pos} bytes expected from byte ${pos})`, true));
      }
      if (!res.body || !hash) return await fail(new DownloadError('network', `${safeUrl}: HTTP ${res.status} without a body`, true));
      job.fromZero = pos === 0;
      await this.receive(job, res.body as ReadableStream<Uint8Array>, pos, hash, () => watchdog.touch(), net);
    } finally {
      watchdog.stop();
      req.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Streams the body into the .part at `pos`, hashing as it goes; cut off past the declared size. */
  private async receive(job: Job, body: ReadableStream<Uint8Array>, pos: number, hash: Hash, touch: () => void, net: (e: unknown) => DownloadError): Promise<void> {
    const { req, paths, safeUrl } = job;
    const reader = body.getReader();
    const fh = await fsp.open(paths.part, 'r+');
    job.hash = { hash, bytes: pos };
    try {
      // Bounded: every read that does not end the body either writes bytes (at most
      // req.size in all) or throws at the first byte past the declared size.
      for (;;) {
        const r = await reader.read().catch((e: unknown) => Promise.reject(net(e)));
        if (r.done) break;
        touch();
        const take = Math.min(req.size - pos, r.value.byteLength);
        if (take > 0) {
          const bytes = r.value.subarray(0, take);
          await writeAllAt(fh, bytes, pos);
          hash.update(bytes);
          pos += take;
          job.fetched += take;
          job.hash = { hash, bytes: pos };
          req.onProgress?.({ received: pos, total: req.size });
          touch(); // a slow SD card is not a stalled server
        }
        if (r.value.byteLength > take) {
          await reader.cancel().catch(() => undefined);
          throw new DownloadError('size', `${safeUrl}: body exceeds the declared size of ${req.size} bytes; cut off`, true);
        }
      }
    } finally {
      // Best effort on failure too, so progress survives a power cut; commit() syncs for real.
      await fh.sync().catch(() => undefined);
      await fh.close();
    }
    if (pos < req.size) throw new DownloadError('network', `${safeUrl}: body ended at byte ${pos} of ${req.size}`, true);
  }

  /** A fresh body: empty the .part durably first, then record its validator (see download-part.ts). */
  private async startOver(job: Job, validator: string | null): Promise<void> {
    await fsyncFile(job.paths.part, 'w'); // 'w' truncates
    job.hash = undefined;
    await writeSidecar(job.paths, { v: 1, url: job.safeUrl, size: job.req.size, sha256: job.req.sha256, validator });
  }

  /** Verified: fsync, rename to the real name, make the rename durable, drop the sidecar. */
  private async commit(job: Job, attempts: number): Promise<DownloadResult> {
    const { req, paths } = job;
    await fsyncFile(paths.part);
    await fsp.rename(paths.part, req.dest);
    await removeQuietly(paths.sidecar);
    await fsyncDir(dirname(req.dest));
    const result = { path: req.dest, size: req.size, attempts, fetchedBytes: job.fetched, resumedFrom: job.resumedFrom };
    this.log.info({ url: job.safeUrl, ...result }, 'download complete');
    return result;
  }

  /** Errors from our own checks pass through; anything else is local: a full disk, or another (permissions). */
  private classify(job: Job, e: unknown): DownloadError {
    if (job.req.signal?.aborted) return new DownloadError('aborted', `download of ${job.safeUrl}: aborted`, false, undefined, { cause: e });
    if (e instanceof DownloadError) return e;
    const msg = e instanceof Error ? e.message : String(e);
    if (isDiskFull(e)) return new DownloadError('disk-full', `download of ${job.safeUrl} into ${job.req.dest}: ${msg}`, false, undefined, { cause: e });
    return new DownloadError('local', `download of ${job.safeUrl} into ${job.req.dest}: ${msg}`, false, undefined, { cause: e });
  }
}
