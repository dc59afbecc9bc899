import { redactUrl } from '../core/redact-url.js';
import { updatesFetch } from './http-client.js';
// Small HTTP GETs for the update poller (the manifest, its signature): conditional, so that an
// hourly poll of an unchanged manifest costs one 304 and no body, and capped, so that a
// misconfigured URL pointing at a model (or an endless response) cannot eat the device's memory.

export { redactUrl };

/** Manifests are small; anything bigger is a mistake or an attack. */
export const MANIFEST_MAX_BYTES = 1024 * 1024;

export interface ConditionalGetOptions {
  /** The ETag of the copy we hold: sent as If-None-Match. */
  etag?: string;
  /** The Last-Modified of the copy we hold: sent as If-Modified-Since. */
  lastModified?: string;
  /** The whole exchange (connect, headers, body) must finish within this. */
  timeoutMs: number;
  /** Body size cap; default (and intended ceiling) MANIFEST_MAX_BYTES. */
  maxBytes?: number;
  /** Default: the update path's pinned undici (http-client.ts), not the runtime's global fetch. */
  fetch?: typeof fetch;
  /** Aborts the request (daemon shutdown). */
  signal?: AbortSignal;
}

export type ConditionalGetResult =
  | { status: 'not-modified' }
  | { status: 'ok'; body: Buffer; etag?: string; lastModified?: string };

/** An HTTP status the caller did not ask for; `url` is already redacted. */
export class HttpStatusError extends Error {
  constructor(
    readonly url: string,
    readonly status: number,
    statusText: string,
  ) {
    super(`GET ${url}: HTTP ${status}${statusText ? ` ${statusText}` : ''}`);
    this.name = 'HttpStatusError';
  }

  /** 5xx, 408 and 429 are worth another try later; other 4xx are configuration errors. */
  get retryable(): boolean {
    return this.status >= 500 || this.status === 408 || this.status === 429;
  }
}


/**
 * fetch() refuses URLs with user:password in them (and would put the URL, secret included, in
 * its error): send them as a Basic Authorization header instead.
 */
export function splitCredentials(url: string): { url: string; authorization?: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { url };
  }
  if (!u.username && !u.password) return { url };
  const userinfo = `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`;
  u.username = '';
  u.password = '';
  return { url: u.href, authorization: `Basic ${Buffer.from(userinfo).toString('base64')}` };
}

/** The most useful line of a fetch failure (undici hides the socket error in `cause`), with the URL redacted. */
export function describeFetchError(err: unknown, rawUrl: string): string {
  const e = err as { message?: string; cause?: { code?: string; message?: string } };
  const cause = e.cause?.code ?? e.cause?.message;
  const text = cause && e.message !== cause ? `${e.message ?? String(err)} (${cause})` : (e.message ?? String(err));
  return text.split(rawUrl).join(redactUrl(rawUrl));
}

/**
 * GET with If-None-Match / If-Modified-Since. A 304 is `not-modified`; a 200 carries the body
 * and the validators to send next time; anything else throws an HttpStatusError (the poller
 * keeps its current model and tries again at the next interval).
 */
export async function conditionalGet(url: string, opts: ConditionalGetOptions): Promise<ConditionalGetResult> {
  const safeUrl = redactUrl(url);
  const maxBytes = opts.maxBytes ?? MANIFEST_MAX_BYTES;
  const doFetch = opts.fetch ?? updatesFetch;
  const target = splitCredentials(url);
  const headers: Record<string, string> = { accept: 'application/json, */*;q=0.5' };
  if (target.authorization) headers.authorization = target.authorization;
  if (opts.etag) headers['if-none-match'] = opts.etag;
  if (opts.lastModified) headers['if-modified-since'] = opts.lastModified;

  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  // Both fetch() and the body reads reject with the signal's reason; name the one that fired.
  const fail = (err: unknown): never => {
    if (timeout.aborted) throw new Error(`GET ${safeUrl}: no complete response within ${opts.timeoutMs} ms`, { cause: err });
    if (opts.signal?.aborted) throw new Error(`GET ${safeUrl}: aborted`, { cause: err });
    throw new Error(`GET ${safeUrl}: ${describeFetchError(err, url)}`, { cause: err });
  };

  let res: Response;
  try {
    res = await doFetch(target.url, { headers, signal, redirect: 'follow' });
  } catch (err) {
    return fail(err);
  }
  if (res.status === 304) {
    await res.body?.cancel().catch(() => undefined);
    // A 304 to an unconditional request would leave the caller with no body at all.
    if (!opts.etag && !opts.lastModified) throw new Error(`GET ${safeUrl}: HTTP 304 to a request without a validator`);
    return { status: 'not-modified' };
  }
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => undefined);
    throw new HttpStatusError(safeUrl, res.status, res.statusText);
  }
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > maxBytes) {
    await res.body?.cancel().catch(() => undefined);
    throw new Error(`GET ${safeUrl}: body of ${declared} bytes is over the ${maxBytes}-byte limit`);
  }
  // Read ourselves rather than res.arrayBuffer(): a body without Content-Length (chunked, or
  // decompressed) is cut off the moment it passes the cap instead of after it is all in memory.
  const chunks: Buffer[] = [];
  let total = 0;
  if (res.body) {
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    try {
      for (let r = await reader.read(); !r.done; r = await reader.read()) {
        total += r.value.byteLength;
        if (total > maxBytes) {
          await reader.cancel().catch(() => undefined);
          throw new Error(`GET ${safeUrl}: body is over the ${maxBytes}-byte limit`);
        }
        chunks.push(Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength));
      }
    } catch (err) {
      if (err instanceof Error && err.message.startsWith(`GET ${safeUrl}`)) throw err;
      return fail(err);
    }
  }
  const result: ConditionalGetResult = { status: 'ok', body: Buffer.concat(chunks, total) };
  const etag = res.headers.get('etag');
  const lastModified = res.headers.get('last-modified');
  if (etag) result.etag = etag;
  if (lastModified) result.lastModified = lastModified;
  return result;
}
