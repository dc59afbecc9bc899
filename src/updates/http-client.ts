import { Agent, fetch as undiciFetch, type RequestInit as UndiciRequestInit } from 'undici';

/**
 * The HTTP client of the update path (manifest, signature, artifacts): the npm `undici`
 * package at an exact version with its own Agent, never the runtime's global fetch. The undici
 * bundled in Node differs per release line, and some lines ship a parser that crashes the whole
 * process with an uncatchable `AssertionError: assert(!this.paused)` when a response body paused
 * by backpressure (a slow SD card) meets the server closing the connection (HTTP/1.0 servers,
 * `Connection: close`, keep-alive off): nodejs/undici#5360, seen with Node 22.23 (undici 6.29)
 * and 24.22 (undici 7.30).
 *
 * Why 7.25.0: the crash came with undici 6.26 / 7.26 (EOF validation of chunked bodies,
 * nodejs/undici#5273) and is fixed only on the 8.x line (8.6.0, nodejs/undici#5474), which needs
 * Node >= 22.19 and does not load on Node 20. 7.25.0 is the newest release that runs on Node 20
 * and predates the regression. What it lacks of 7.26+ does not reach this path: a chunked body
 * cut short by EOF is taken as complete, but every artifact is size- and sha256-checked and the
 * manifest and its signature are verified together; the later security fixes are in SOCKS5
 * proxies, WebSockets, cookies, the cache and BalancedPool, none of which is used here. Move to
 * undici >= 8.6 once Node 20 support is dropped (raise engines to >= 22.19 with it).
 * test/integration/download-close.test.ts fails on a version with the crash, on every Node line
 * that `npm run test:node-lines` runs.
 */

let agent: Agent | undefined;

/** One Agent for the process, made on first use (nothing is opened at import). */
function updatesAgent(): Agent {
  // Keep-alive sockets to the release host are reused across the artifacts of a release;
  // undici's own timeouts stay as a backstop behind the callers' (conditionalGet's deadline,
  // the downloader's stall watchdog).
  agent ??= new Agent({ keepAliveTimeout: 10_000, connections: 4 });
  return agent;
}

/** `fetch` for the update path; the same signature as the global one, so tests can inject either. */
export const updatesFetch: typeof fetch = (input, init) => {
  // The update path passes URLs; a Request would be a different class from undici's own.
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  return undiciFetch(url, { ...(init as UndiciRequestInit | undefined), dispatcher: updatesAgent() });
};

/** Closes the Agent's sockets (tests, or a clean shutdown that wants no lingering connection). */
export async function closeUpdatesClient(): Promise<void> {
  const a = agent;
  agent = undefined;
  await a?.close();
}
