import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { runCli, startCli, waitForLog, type Started } from '../helpers/cli.js';
import { freePort } from '../helpers/ports.js';
import { tempDir, writeColourModel } from '../helpers/fixtures.js';
import { until } from '../helpers/sse-client.js';
import { hashPassword } from '../../src/service/http/http-auth.js';

// Who may talk to the daemon's HTTP server, tried as an attacker would: raw requests with a
// foreign Host header, and a real Chromium whose resolver maps evil.example to 127.0.0.1 (what
// DNS rebinding achieves, and what a page reaching through an `ssh -L` tunnel sees), then
// credentials (http.auth) from raw clients and from the browser. Before the Host check, every
// request below that expects 421 got 200.

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`http-access.test.ts: Chromium tests SKIPPED: ${CHROMIUM} not found`);

const TOKEN = 'f3a9c1d27e5b4608a1c2d3e4f5a6b7c8';
const USER = 'alice';
const PASSWORD = 'correct horse battery';
/** The name the operator allows; mapped to 127.0.0.1 in Chromium like evil.example. */
const ALLOWED = 'camera.example';

let dir: string;
let model: { model: string; labels: string };
const daemons: Started[] = [];

beforeAll(() => {
  dir = tempDir('ec-http-access-');
  model = writeColourModel(join(dir, 'model'));
});

afterAll(async () => {
  for (const d of daemons) d.proc.kill('SIGKILL');
  await Promise.all(daemons.map((d) => d.finished));
  rmSync(dir, { recursive: true, force: true });
});

async function writeConfig(name: string, http: string): Promise<string> {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(
    path,
    `device_id: access-it
model: { path: ${model.model}, labels: ${model.labels}, preset: imagenet, execution_providers: [cpu] }
cameras:
  - id: cam1
    source: { type: synthetic, fps: 4, width: 320, height: 240 }
mqtt: { url: embedded, embedded: { host: 127.0.0.1, port: ${await freePort()} } }
http: ${http}
state_dir: ${join(dir, `state-${name}`)}
stats_interval: 0
`,
  );
  return path;
}

async function startDaemon(name: string, http: string): Promise<{ daemon: Started; port: number }> {
  const daemon = startCli(['run', '--config', await writeConfig(name, http)]);
  daemons.push(daemon);
  const line = await waitForLog(daemon, (l) => l.msg === 'HTTP server listening', 30_000);
  return { daemon, port: Number(new URL(String(line.url)).port) };
}

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * One request over a plain socket, so the Host header (or its absence, HTTP/1.0) is exactly
 * what is written. Resolves once the head and `content-length` bytes are in, or, for a stream
 * with no length (/events), with the first chunk of it.
 */
function raw(port: number, path: string, headers: Record<string, string>, version = '1.1'): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let data = '';
    const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`);
    sock.on('connect', () => sock.write(`GET ${path} HTTP/${version}\r\n${lines.join('')}Connection: close\r\n\r\n`));
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      data += d;
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [statusLine, ...rest] = data.slice(0, end).split('\r\n');
      const head: Record<string, string> = {};
      for (const l of rest) {
        const [k, v] = [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()];
        head[k] = head[k] === undefined ? v : `${head[k]}, ${v}`;
      }
      const body = data.slice(end + 4);
      const length = head['content-length'];
      if (length !== undefined && Buffer.byteLength(body, 'latin1') < Number(length)) return;
      sock.destroy();
      resolve({ status: Number(statusLine!.split(' ')[1]), headers: head, body });
    });
    sock.on('error', reject);
    sock.setTimeout(15_000, () => (sock.destroy(), reject(new Error(`no answer to ${path}`))));
  });
}

const ARGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    // The DNS-rebinding setup: both names resolve to loopback, as an attacker's DNS would make evil.example do.
    args: [...ARGS, `--host-resolver-rules=MAP evil.example 127.0.0.1, MAP ${ALLOWED} 127.0.0.1`],
    timeout: 60_000,
  });
}

/** The preview page in `context` at `origin` shows frames of cam1 arriving over its event stream. */
async function expectLivePreview(context: BrowserContext, origin: string): Promise<void> {
  const page = await context.newPage();
  const response = await page.goto(`${origin}/`);
  expect(response?.status()).toBe(200);
  await expect.poll(() => page.locator('#conn').textContent(), { timeout: 30_000 }).toBe('live');
  // Polled from here: waitForFunction's in-page polling evaluates strings, which the page's CSP forbids.
  const IMG = 'document.querySelector(\'section.cam[data-camera="cam1"] img\')';
  let size: unknown;
  await until(async () => (size = await page.evaluate(`(${IMG}?.naturalWidth ?? 0) > 0 && [${IMG}.naturalWidth, ${IMG}.naturalHeight]`)) !== false, 'a frame in the page');
  expect(size).toEqual([320, 240]);
  // Frames keep coming: the frame number shown changes (each one is an SSE frame event).
  const seq = page.locator('section.cam[data-camera="cam1"] .seq');
  const first = await seq.textContent();
  await expect.poll(() => seq.textContent(), { timeout: 15_000 }).not.toBe(first);
  await page.close();
}

describe('Host check (no auth, default loopback)', () => {
  let port: number;
  let daemon: Started;
  let browser: Browser | undefined;

  beforeAll(async () => {
    ({ daemon, port } = await startDaemon('host', `{ port: 0, allowed_hosts: [${ALLOWED}] }`));
    const local = { host: `127.0.0.1:${port}` };
    await until(async () => (await raw(port, '/snapshot/cam1.jpg', local)).status === 200, 'a first frame');
    if (hasChromium) browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
  });

  it.each(['/snapshot/cam1.jpg', '/metrics', '/events', '/healthz', '/readyz', '/', '/no/such/path'])('refuses Host: evil.example on %s with 421', async (path) => {
    for (const host of [`evil.example:${port}`, 'evil.example', `127.0.0.1.evil.example:${port}`]) {
      const res = await raw(port, path, { host });
      expect(res.status, host).toBe(421);
      expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
      expect(res.body).toContain('http.allowed_hosts');
    }
  });

  it('answers its own names with the right port, and the allowed name', async () => {
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`, `${ALLOWED}:${port}`]) {
      const snap = await raw(port, '/snapshot/cam1.jpg', { host });
      expect(snap.status, host).toBe(200);
      expect(snap.headers['content-type']).toBe('image/jpeg');
      expect((await raw(port, '/metrics', { host })).body).toContain('edge_classifier_frames_classified_total');
      const events = await raw(port, '/events', { host });
      expect(events.status).toBe(200);
      expect(events.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    }
    // Another port than the one listened on is another server.
    expect((await raw(port, '/metrics', { host: `127.0.0.1:${port + 1}` })).status).toBe(421);
  });

  it('still answers path traversal with 404 once the Host is right', async () => {
    for (const path of ['/../../etc/passwd', '/snapshot/..%2f..%2fetc%2fpasswd.jpg', '/snapshot/%2e%2e.jpg', '//etc/passwd']) {
      expect((await raw(port, path, { host: `127.0.0.1:${port}` })).status, path).toBe(404);
    }
  });

  it('refuses a request without Host (HTTP/1.0) and logs the first refusal of a name once', async () => {
    expect((await raw(port, '/healthz', {}, '1.0')).status).toBe(421);
    expect((await raw(port, '/healthz', { host: `127.0.0.1:${port}` }, '1.0')).status).toBe(200);
    const refused = daemon.logs().filter((l) => l.level === 40 && String(l.msg).startsWith('HTTP request for another host name refused'));
    expect(refused.filter((l) => l.host === `evil.example:${port}`)).toHaveLength(1);
  });

  it('holds 300 sockets that never finish their headers and still answers', async () => {
    const sockets: Socket[] = [];
    try {
      for (let i = 0; i < 300; i++) {
        const s = connect(port, '127.0.0.1');
        s.on('error', () => undefined);
        s.write(`GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Slow: `);
        sockets.push(s);
      }
      await Promise.all(sockets.map((s) => new Promise((r) => (s.connecting ? s.once('connect', r) : r(undefined)))));
      const started = Date.now();
      expect((await raw(port, '/healthz', { host: `127.0.0.1:${port}` })).status).toBe(200);
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(sockets.filter((s) => s.destroyed)).toHaveLength(0);
    } finally {
      for (const s of sockets) s.destroy();
    }
  });

  it.skipIf(!hasChromium)('in Chromium: a page on a rebinding name gets 421, the allowed name shows the live preview', async () => {
    const context = await browser!.newContext();
    const page = await context.newPage();
    const evil = await page.goto(`http://evil.example:${port}/`);
    expect(evil?.status()).toBe(421);
    // The attacker's script runs on the evil.example origin; its same-origin reads are refused too.
    const reads = await page.evaluate(`Promise.all(['/snapshot/cam1.jpg', '/metrics', '/readyz'].map((p) => fetch(p).then((r) => r.status)))`);
    expect(reads).toEqual([421, 421, 421]);
    await page.close();
    await expectLivePreview(context, `http://${ALLOWED}:${port}`);
    await expectLivePreview(context, `http://localhost:${port}`);
    await context.close();
  });
});

describe('http.auth', () => {
  let port: number;
  let browser: Browser | undefined;
  const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

  beforeAll(async () => {
    writeFileSync(join(dir, 'token'), `${TOKEN}\n`);
    writeFileSync(join(dir, 'users'), `# test users\n${USER}:${await hashPassword(PASSWORD)}\n`);
    const auth = `{ token_file: ${join(dir, 'token')}, basic_file: ${join(dir, 'users')} }`;
    ({ port } = await startDaemon('auth', `{ port: 0, allowed_hosts: [${ALLOWED}], auth: ${auth} }`));
    if (hasChromium) browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
  });

  it('asks raw clients for credentials everywhere but /healthz, and takes the token or a basic user', async () => {
    const host = { host: `127.0.0.1:${port}` };
    for (const path of ['/metrics', '/readyz', '/snapshot/cam1.jpg', '/events', '/', '/no/such/path']) {
      const res = await raw(port, path, host);
      expect(res.status, path).toBe(401);
      expect(res.headers['www-authenticate']).toBeDefined();
    }
    const challenge = await raw(port, '/metrics', host);
    expect(challenge.headers['www-authenticate']).toBe('Basic realm="edge-classifier", charset="UTF-8", Bearer realm="edge-classifier"');
    expect((await raw(port, '/healthz', host)).status).toBe(200);
    expect((await raw(port, '/metrics', { ...host, authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    expect((await raw(port, '/events', { ...host, authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    expect((await raw(port, '/metrics', { ...host, authorization: basic(USER, PASSWORD) })).status).toBe(200);
    expect((await raw(port, '/metrics', { ...host, authorization: `Bearer ${TOKEN.slice(0, -1)}0` })).status).toBe(401);
    expect((await raw(port, '/metrics', { ...host, authorization: basic(USER, 'wrong') })).status).toBe(401);
    // Credentials do not make a foreign name acceptable.
    expect((await raw(port, '/metrics', { host: `evil.example:${port}`, authorization: `Bearer ${TOKEN}` })).status).toBe(421);
    expect((await raw(port, '/healthz', { host: `evil.example:${port}` })).status).toBe(421);
  });

  it.skipIf(!hasChromium)('in Chromium: 401 without credentials; with basic credentials the preview page and its event stream work', async () => {
    for (const httpCredentials of [undefined, { username: USER, password: 'wrong' }]) {
      const context = await browser!.newContext(httpCredentials ? { httpCredentials } : {});
      const page = await context.newPage();
      const statuses: number[] = [];
      page.on('response', (r) => statuses.push(r.status()));
      // Headless Chromium has no password dialog to show: it ends the navigation with
      // ERR_INVALID_AUTH_CREDENTIALS after the 401, where a desktop one would ask.
      const outcome = await page.goto(`http://${ALLOWED}:${port}/`).then(
        (r) => String(r?.status()),
        (err: Error) => err.message,
      );
      expect(outcome).toMatch(/^401$|ERR_INVALID_AUTH_CREDENTIALS/);
      expect(statuses).toContain(401);
      expect(statuses).not.toContain(200);
      await context.close();
    }

    // Playwright answering the challenge, as a password dialog would.
    const user = await browser!.newContext({ httpCredentials: { username: USER, password: PASSWORD } });
    await expectLivePreview(user, `http://${ALLOWED}:${port}`);
    await user.close();

    // Credentials in the URL, typed once: Chromium resends them with the page's EventSource and
    // snapshot requests by itself (same origin), without another challenge for any of them.
    const typed = await browser!.newContext();
    const statuses: string[] = [];
    typed.on('response', (r) => statuses.push(`${r.status()} ${new URL(r.url()).pathname}`));
    await expectLivePreview(typed, `http://${USER}:${encodeURIComponent(PASSWORD)}@${ALLOWED}:${port}`);
    expect(statuses.filter((s) => s.startsWith('401 ') && s !== '401 /')).toEqual([]);
    expect(statuses).toContain('200 /events');
    expect(statuses.filter((s) => s.startsWith('200 /snapshot/cam1.jpg')).length).toBeGreaterThan(1);
    await typed.close();
  });
});

describe('exposure and configuration errors', () => {
  it('on 0.0.0.0 without auth: warns at start, answers the interface addresses and the hostname', async () => {
    const { daemon, port } = await startDaemon('wide', '{ host: 0.0.0.0, port: 0, preview: false }');
    const warning = await waitForLog(daemon, (l) => l.level === 40 && String(l.msg).startsWith('http.host 0.0.0.0 is reachable from the network and http.auth is not set'));
    expect(warning.msg).toContain('set http.auth');
    const external = Object.values(networkInterfaces()).flat().find((i) => i && !i.internal && i.family === 'IPv4');
    const names = [`localhost:${port}`, `${hostname().toLowerCase()}:${port}`, ...(external ? [`${external.address}:${port}`] : [])];
    for (const host of names) expect((await raw(port, '/metrics', { host })).status, host).toBe(200);
    expect((await raw(port, '/metrics', { host: `evil.example:${port}` })).status).toBe(421);
  });

  it('a missing token file exits 78 naming http.auth.token_file', async () => {
    const config = await writeConfig('missing', `{ port: 0, auth: { token_file: ${join(dir, 'no-such-token')} } }`);
    const done = await runCli(['run', '--config', config]);
    expect(done.code).toBe(78);
    expect(done.stderr + done.stdout).toMatch(/http\.auth\.token_file: cannot read .*no-such-token: ENOENT/);
  });
});
