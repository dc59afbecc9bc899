import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { pino } from 'pino';
import { createSystemClock } from '../../src/core/clock.js';
import { Downloader, DownloadError, type DownloaderConfig } from '../../src/updates/downloader.js';
import { conditionalGet, HttpStatusError } from '../../src/updates/http-poll.js';
import { updatesFetch } from '../../src/updates/http-client.js';
import { tempDir } from '../helpers/fixtures.js';
import { REPO } from '../helpers/cli.js';
import { Nginx } from '../helpers/nginx.js';
import { FaultProxy } from '../helpers/fault-proxy.js';

// Downloads from a real nginx (Range, If-Range, ETag, 304) through a fault-injecting proxy,
// with the update path's own HTTP client (the pinned undici of src/updates/http-client.ts).

const MiB = 1024 * 1024;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let www: string;
let nginx: Nginx;
let proxy: FaultProxy;
let work: string;
let logs: string[];
const model = randomBytes(4 * MiB);
const MODEL = { size: model.length, sha256: sha(model) };

function downloader(config: Partial<DownloaderConfig> = {}): Downloader {
  const logger = pino({ level: 'debug' }, { write: (s: string) => void logs.push(s) });
  return new Downloader({ logger, clock: createSystemClock(), fetch: updatesFetch, config: { timeout_ms: 3000, retries: 3, backoff: { base_ms: 10, max_ms: 50 }, ...config } });
}
const warnings = (): string[] => logs.map((l) => JSON.parse(l) as { level: number; err?: string }).filter((l) => l.level === 40).map((l) => l.err ?? '');
const dest = (name = 'model.onnx'): string => join(work, name);
const etagOf = async (name: string): Promise<string | null> => (await fetch(nginx.url(name), { method: 'HEAD' })).headers.get('etag');

beforeAll(async () => {
  www = tempDir('ec-www-');
  writeFileSync(join(www, 'model.onnx'), model);
  nginx = await Nginx.start(www);
  proxy = await FaultProxy.start(nginx.port);
});
afterAll(async () => {
  await proxy?.stop();
  await nginx?.stop();
  rmSync(www, { recursive: true, force: true });
});
beforeEach(() => {
  proxy.clear();
  proxy.bytesPerSecond = undefined;
  work = tempDir('ec-dl-');
  logs = [];
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

describe('Downloader against nginx', () => {
  it('downloads, verifies and renames; no temp files left', async () => {
    const res = await downloader().download({ url: proxy.url('model.onnx'), ...MODEL, dest: dest() });
    expect(res).toMatchObject({ path: dest(), size: MODEL.size, attempts: 1, fetchedBytes: MODEL.size, resumedFrom: 0 });
    expect(sha(readFileSync(dest()))).toBe(MODEL.sha256);
    expect(readdirSync(work)).toEqual(['model.onnx']);
    expect(proxy.requests).toHaveLength(1);
    expect(proxy.requests[0]?.range).toBeUndefined();
  });

  it('resumes after a reset mid-body with Range + If-Range, fetching only the rest', async () => {
    proxy.enqueue({ kind: 'reset', afterBytes: MiB });
    const res = await downloader().download({ url: proxy.url('model.onnx'), ...MODEL, dest: dest() });
    expect(sha(readFileSync(dest()))).toBe(MODEL.sha256);
    const [first, second] = proxy.requests;
    expect(proxy.requests).toHaveLength(2);
    expect(first?.range).toBeUndefined();
    expect(second?.range).toBe(`bytes=${res.resumedFrom}-`);
    expect(second?.ifRange).toBe(await etagOf('model.onnx'));
    expect(res.resumedFrom).toBeGreaterThan(0);
    expect(res.resumedFrom).toBeLessThanOrEqual(MiB);
    expect(second?.status).toBe(206);
    expect(second?.bodyBytes).toBe(MODEL.size - res.resumedFrom);
    expect(res.fetchedBytes).toBe(MODEL.size);
  });

  it('resumes in a new Downloader (a restarted process) from the .part and its sidecar', async () => {
    proxy.enqueue({ kind: 'truncate', afterBytes: 1.5 * MiB });
    const err = await downloader({ retries: 0 }).download({ url: proxy.url('model.onnx'), ...MODEL, dest: dest() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as DownloadError).message).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/model\.onnx: /);
    // fetch() drops the chunks it had queued when the stream errors: a little less than was sent.
    const have = statSync(`${dest()}.part`).size;
    expect(have).toBeGreaterThan(0);
    expect(have).toBeLessThanOrEqual(1.5 * MiB);
    const sidecar = JSON.parse(readFileSync(`${dest()}.part.json`, 'utf8')) as Record<string, unknown>;
    expect(sidecar).toEqual({ v: 1, url: proxy.url('model.onnx'), size: MODEL.size, sha256: MODEL.sha256, validator: await etagOf('model.onnx') });

    const res = await downloader().download({ url: proxy.url('model.onnx'), ...MODEL, dest: dest() });
    expect(res).toMatchObject({ attempts: 1, resumedFrom: have, fetchedBytes: MODEL.size - have });
    expect(proxy.requests[1]).toMatchObject({ range: `bytes=${have}-`, ifRange: sidecar.validator, status: 206 });
    expect(sha(readFileSync(dest()))).toBe(MODEL.sha256);
  });

  it('starts over when the file changed on the server (If-Range → 200), then fails the sha256 check clearly', async () => {
    const v1 = randomBytes(2 * MiB);
    const v2 = randomBytes(2 * MiB);
    writeFileSync(join(www, 'changing.onnx'), v1);
    proxy.enqueue({ kind: 'reset', afterBytes: MiB / 2 });
    const manifest = { url: proxy.url('changing.onnx?token=s3cret'), size: v1.length, sha256: sha(v1), dest: dest('changing.onnx') };
    await expect(downloader({ retries: 0 }).download(manifest)).rejects.toThrow(DownloadError);
    const oldEtag = await etagOf('changing.onnx');
    writeFileSync(join(www, 'changing.onnx'), v2);
    utimesSync(join(www, 'changing.onnx'), new Date(), new Date(Date.now() + 60_000)); // a new ETag for sure

    const err = (await downloader().download(manifest).catch((e: unknown) => e)) as DownloadError;
    expect(err.reason).toBe('sha256');
    expect(err.message).toBe(`sha256 mismatch for changing.onnx (${proxy.url('changing.onnx')}?<redacted>): expected ${sha(v1)}, got ${sha(v2)}`);
    expect(proxy.requests).toHaveLength(2); // one whole response from byte 0: no second try
    expect(proxy.requests[1]).toMatchObject({ ifRange: oldEtag, status: 200, bodyBytes: v2.length });
    expect(readdirSync(work)).toEqual([]);
  });

  it('starts over when the server ignores Range (200), and succeeds', async () => {
    proxy.enqueue({ kind: 'reset', afterBytes: MiB }, { kind: 'ignore-range' });
    const res = await downloader().download({ url: proxy.url('model.onnx'), ...MODEL, dest: dest() });
    expect(sha(readFileSync(dest()))).toBe(MODEL.sha256);
    expect(proxy.requests[1]).toMatchObject({ range: expect.stringMatching(/^bytes=\d+-$/), fault: 'ignore-range', status: 200 });
    expect(res.fetchedBytes).toBeGreaterThan(MODEL.size);
    expect(logs.some((l) => l.includes('starting over'))).toBe(true);
  });

  it('times out a stalled body and resumes', async () => {
    proxy.enqueue({ kind: 'stall', afterBytes: MiB / 2 });
    const t0 = performance.now();
    const res = await downloader({ timeout_ms: 400 }).download({ url: proxy.url('model.onnx'), ...MODEL, dest: dest() });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(400);
    expect(sha(readFileSync(dest()))).toBe(MODEL.sha256);
    expect(res.attempts).toBe(2);
    expect(proxy.requests[1]?.range).toBe(`bytes=${res.resumedFrom}-`);
    expect(warnings()).toEqual([expect.stringMatching(/model\.onnx: no data for 400 ms at byte \d+/)]);
  });

  it('retries 500 and 503, gives up after `retries`, and does not retry a 404', async () => {
    proxy.enqueue({ kind: 'status', status: 500 }, { kind: 'status', status: 503, retryAfter: 0 });
    const res = await downloader().download({ url: proxy.url('model.onnx'), ...MODEL, dest: dest() });
    expect(res.attempts).toBe(3);
    expect(warnings()).toEqual([expect.stringContaining('HTTP 500 Internal Server Error'), expect.stringContaining('HTTP 503 Service Unavailable')]);

    proxy.clear();
    proxy.enqueue(...Array.from({ length: 3 }, () => ({ kind: 'status' as const, status: 503 })));
    await expect(downloader({ retries: 2 }).download({ url: proxy.url('model.onnx'), ...MODEL, dest: dest('b.onnx') })).rejects.toThrow(
      /^download of b\.onnx failed after 3 attempts: http:\/\/127\.0\.0\.1:\d+\/model\.onnx: HTTP 503 Service Unavailable$/,
    );
    proxy.clear();
    const err = (await downloader().download({ url: proxy.url('missing.onnx'), ...MODEL, dest: dest('c.onnx') }).catch((e: unknown) => e)) as DownloadError;
    expect(err.message).toMatch(/missing\.onnx: HTTP 404 Not Found$/);
    expect(err.retryable).toBe(false);
    expect(proxy.requests).toHaveLength(1);
  });

  it('resumes after a truncated body (clean close before Content-Length)', async () => {
    proxy.enqueue({ kind: 'truncate', afterBytes: MiB });
    const res = await downloader().download({ url: proxy.url('model.onnx'), ...MODEL, dest: dest() });
    expect(sha(readFileSync(dest()))).toBe(MODEL.sha256);
    expect(res.resumedFrom).toBeGreaterThan(0);
    expect(res.resumedFrom).toBeLessThanOrEqual(MiB);
    expect(proxy.requests[1]).toMatchObject({ range: `bytes=${res.resumedFrom}-`, status: 206, bodyBytes: MODEL.size - res.resumedFrom });
    expect(res.fetchedBytes).toBe(MODEL.size);
  });

  it.each([-1000, 1000])('refuses a Content-Length that disagrees with the declared size (%i), then retries', async (delta) => {
    proxy.enqueue({ kind: 'length', delta });
    await downloader().download({ url: proxy.url('model.onnx'), ...MODEL, dest: dest() });
    expect(sha(readFileSync(dest()))).toBe(MODEL.sha256);
    expect(warnings()).toEqual([expect.stringContaining(`Content-Length ${MODEL.size + delta} disagrees with the declared size (${MODEL.size} bytes expected from byte 0)`)]);
  });

  it('cuts an endless body off at the declared size', async () => {
    proxy.enqueue({ kind: 'endless' });
    const err = (await downloader({ retries: 0 }).download({ url: proxy.url('model.onnx'), ...MODEL, dest: dest() }).catch((e: unknown) => e)) as DownloadError;
    expect(err.reason).toBe('size');
    expect(err.message).toMatch(/model\.onnx: body exceeds the declared size of 4194304 bytes; cut off$/);
    expect(statSync(`${dest()}.part`).size).toBe(MODEL.size); // never more than declared
    await new Promise((r) => setTimeout(r, 100));
    expect(proxy.requests[0]?.bodyBytes).toBeLessThan(MODEL.size + 8 * MiB); // the proxy noticed the hang-up
    // The declared bytes are kept; their sha256 decides (here: the real file, no request needed).
    const res = await downloader().download({ url: proxy.url('model.onnx'), ...MODEL, dest: dest() });
    expect(res.fetchedBytes).toBe(0);
    expect(proxy.requests).toHaveLength(1);
    expect(sha(readFileSync(dest()))).toBe(MODEL.sha256);
  });

  it('fails a sha256 mismatch clearly, deletes the partial file and does not download twice', async () => {
    const wrong = sha(Buffer.from('another model'));
    const err = (await downloader().download({ url: proxy.url('model.onnx'), size: MODEL.size, sha256: wrong, dest: dest() }).catch((e: unknown) => e)) as DownloadError;
    expect(err.message).toBe(`sha256 mismatch for model.onnx (${proxy.url('model.onnx')}): expected ${wrong}, got ${MODEL.sha256}`);
    expect(readdirSync(work)).toEqual([]);
    expect(proxy.requests).toHaveLength(1);
  });

  it('downloads once more from byte 0 when a resumed file fails its sha256 (a corrupt prefix)', async () => {
    proxy.enqueue({ kind: 'truncate', afterBytes: MiB });
    await expect(downloader({ retries: 0 }).download({ url: proxy.url('model.onnx'), ...MODEL, dest: dest() })).rejects.toThrow();
    const part = readFileSync(`${dest()}.part`);
    part[1000] = (part[1000] ?? 0) ^ 0xff; // what a torn write after a power cut could leave
    writeFileSync(`${dest()}.part`, part);
    const res = await downloader().download({ url: proxy.url('model.onnx'), ...MODEL, dest: dest() });
    expect(sha(readFileSync(dest()))).toBe(MODEL.sha256);
    expect(proxy.requests.map((r) => r.range)).toEqual([undefined, `bytes=${part.length}-`, undefined]);
    expect(res.fetchedBytes).toBe(MODEL.size + MODEL.size - part.length);
    expect(warnings()).toEqual([expect.stringContaining('sha256 mismatch for model.onnx')]);
  });

  it('keeps secrets out of errors and sends URL credentials as Basic auth', async () => {
    const err = (await downloader().download({ url: `http://bob:hunter2@127.0.0.1:${proxy.port}/nope.onnx?sig=abc`, ...MODEL, dest: dest() }).catch((e: unknown) => e)) as Error;
    expect(err.message).toBe(`http://127.0.0.1:${proxy.port}/nope.onnx?<redacted>: HTTP 404 Not Found`);
  });

  it('stops on abort and keeps the .part for a later resume', async () => {
    proxy.bytesPerSecond = 8 * MiB;
    const ac = new AbortController();
    const onProgress = (p: { received: number }): void => void (p.received > MiB && ac.abort());
    const err = (await downloader().download({ url: proxy.url('model.onnx'), ...MODEL, dest: dest(), onProgress, signal: ac.signal }).catch((e: unknown) => e)) as DownloadError;
    expect(err.reason).toBe('aborted');
    expect(statSync(`${dest()}.part`).size).toBeGreaterThan(MiB);
    expect(existsSync(`${dest()}.part.json`)).toBe(true);
  });

  it('cleanTemp keeps only the resumable downloads asked for (also in per-version subdirectories)', async () => {
    const names = ['a.onnx', 'a.onnx.part', 'a.onnx.part.json', 'a.onnx.part.json.tmp', 'b.onnx.part', 'b.onnx.part.json', 'stray'];
    for (const n of names) writeFileSync(join(work, n), 'x');
    mkdirSync(join(work, 'olddir'));
    mkdirSync(join(work, '1.2.0', 'validation'), { recursive: true });
    for (const n of ['1.2.0/model.onnx.part', '1.2.0/model.onnx.part.json', '1.2.0/labels.txt.part', '1.2.0/validation/img.jpg', '1.2.0/validation/x.jpg.part']) writeFileSync(join(work, n), 'x');
    const keep = new Set([join(work, 'a.onnx'), join(work, '1.2.0/model.onnx'), join(work, '1.2.0/validation/img.jpg')]);
    const removed = await downloader().cleanTemp(work, keep);
    expect(removed.sort()).toEqual(['1.2.0/labels.txt.part', '1.2.0/validation/x.jpg.part', 'a.onnx.part.json.tmp', 'b.onnx.part', 'b.onnx.part.json', 'olddir', 'stray']);
    expect(readdirSync(work, { recursive: true }).map(String).sort()).toEqual([
      '1.2.0', '1.2.0/model.onnx.part', '1.2.0/model.onnx.part.json', '1.2.0/validation', '1.2.0/validation/img.jpg', 'a.onnx', 'a.onnx.part', 'a.onnx.part.json',
    ]);
    expect(await downloader().cleanTemp(work, new Set())).toEqual(expect.arrayContaining(['1.2.0', 'a.onnx']));
    expect(readdirSync(work)).toEqual([]);
  });
});

describe('conditionalGet against nginx', () => {
  const manifestBody = JSON.stringify({ version: '1.2.3' });
  beforeAll(() => writeFileSync(join(www, 'manifest.json'), manifestBody));

  it('200 with ETag and Last-Modified, then 304 with If-None-Match, and with If-Modified-Since', async () => {
    const first = await conditionalGet(proxy.url('manifest.json'), { timeoutMs: 5000 });
    if (first.status !== 'ok') throw new Error('expected a body');
    expect(first.body.toString()).toBe(manifestBody);
    expect(first.etag).toMatch(/^"[0-9a-f]+-[0-9a-f]+"$/);
    expect(first.lastModified).toMatch(/GMT$/);
    expect(await conditionalGet(proxy.url('manifest.json'), { etag: first.etag, timeoutMs: 5000 })).toEqual({ status: 'not-modified' });
    expect(await conditionalGet(proxy.url('manifest.json'), { lastModified: first.lastModified, timeoutMs: 5000 })).toEqual({ status: 'not-modified' });
    expect(proxy.requests.map((r) => [r.ifNoneMatch, r.ifModifiedSince, r.status])).toEqual([
      [undefined, undefined, 200],
      [first.etag, undefined, 304],
      [undefined, first.lastModified, 304],
    ]);
    writeFileSync(join(www, 'manifest.json'), manifestBody.replace('1.2.3', '1.2.4'));
    utimesSync(join(www, 'manifest.json'), new Date(), new Date(Date.now() + 60_000));
    const changed = await conditionalGet(proxy.url('manifest.json'), { etag: first.etag, timeoutMs: 5000 });
    expect(changed.status === 'ok' && changed.body.toString()).toContain('1.2.4');
  });

  it('fails clearly on 4xx/5xx, oversized or endless bodies, and stalls', async () => {
    const err = (await conditionalGet(proxy.url('nope.json?key=s3cret'), { timeoutMs: 5000 }).catch((e: unknown) => e)) as HttpStatusError;
    expect(err).toBeInstanceOf(HttpStatusError);
    expect(err.message).toBe(`GET ${proxy.url('nope.json')}?<redacted>: HTTP 404 Not Found`);
    expect(err.retryable).toBe(false);
    proxy.enqueue({ kind: 'status', status: 502 });
    await expect(conditionalGet(proxy.url('manifest.json'), { timeoutMs: 5000 })).rejects.toMatchObject({ status: 502, retryable: true });
    await expect(conditionalGet(proxy.url('model.onnx'), { timeoutMs: 5000 })).rejects.toThrow(/body of 4194304 bytes is over the 1048576-byte limit/);
    proxy.enqueue({ kind: 'endless' });
    await expect(conditionalGet(proxy.url('manifest.json'), { timeoutMs: 5000 })).rejects.toThrow(/manifest\.json: body is over the 1048576-byte limit$/);
    proxy.enqueue({ kind: 'stall', afterBytes: 3 });
    await expect(conditionalGet(proxy.url('manifest.json'), { timeoutMs: 300 })).rejects.toThrow(/manifest\.json: no complete response within 300 ms$/);
  });
});

describe('Downloader under SIGKILL', () => {
  const TRIALS = 10;
  const buildDir = join(REPO, '.tmp', `download-crash-${process.pid}`);
  const script = join(buildDir, 'child.mjs');
  const big = randomBytes(8 * MiB);

  beforeAll(async () => {
    writeFileSync(join(www, 'big.onnx'), big);
    mkdirSync(buildDir, { recursive: true });
    // Bundled next to the repo so that `pino` still resolves from node_modules.
    await build({ entryPoints: [join(REPO, 'test/helpers/download-child.ts')], bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', outfile: script, logLevel: 'warning' });
  });
  afterAll(() => rmSync(buildDir, { recursive: true, force: true }));

  /** Runs the child; SIGKILLs it `killAfterMs` after it printed `ready`. */
  function runAndKill(args: string[], killAfterMs: number): Promise<{ out: string; killed: boolean }> {
    return new Promise((resolve, reject) => {
      const proc = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      let timer: NodeJS.Timeout | undefined;
      proc.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (!timer && out.includes('ready\n')) timer = setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
      });
      proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
      proc.on('close', (code, signal) => {
        clearTimeout(timer);
        if (signal === 'SIGKILL' || code === 0) resolve({ out, killed: signal === 'SIGKILL' });
        else reject(new Error(`child exited with ${code}: ${err}`));
      });
    });
  }

  it(`resumes to the right sha256 after ${TRIALS} kills at random points`, { timeout: 180_000 }, async () => {
    const file = { url: proxy.url('big.onnx'), size: big.length, sha256: sha(big) };
    const lines: string[] = [];
    let resumed = 0;
    for (let t = 0; t < TRIALS; t++) {
      const target = dest('big.onnx');
      for (const f of readdirSync(work)) rmSync(join(work, f), { force: true });
      proxy.clear();
      proxy.bytesPerSecond = 4 * MiB; // ~2 s for the whole file
      const killAfterMs = Math.round(Math.random() * 2300);
      const { out, killed } = await runAndKill([file.url, String(file.size), file.sha256, target], killAfterMs);
      proxy.bytesPerSecond = undefined;
      const reported = Number(out.split('\n').filter((l) => l.startsWith('P ')).at(-1)?.slice(2) ?? 0);
      const part = existsSync(`${target}.part`) ? statSync(`${target}.part`).size : undefined;
      const sidecar = existsSync(`${target}.part.json`);
      const left = readdirSync(work).sort().join(',');
      const finished = existsSync(target); // renamed before the kill landed

      const d = downloader();
      const cleaned = await d.cleanTemp(work, new Set([target]));
      const before = proxy.requests.length;
      const res = await d.download({ ...file, dest: target });
      expect(sha(readFileSync(target)), `trial ${t}`).toBe(file.sha256);
      expect(readdirSync(work), `trial ${t}`).toEqual(['big.onnx']);
      const req = proxy.requests[before];
      if (part !== undefined && sidecar && part > 0 && part < file.size) {
        // Everything the killed process wrote was reused: only the rest was fetched.
        expect(part, `trial ${t}`).toBeGreaterThanOrEqual(reported);
        expect(res?.resumedFrom, `trial ${t}`).toBe(part);
        expect(req?.range, `trial ${t}`).toBe(`bytes=${part}-`);
        expect(res?.fetchedBytes, `trial ${t}`).toBe(file.size - part);
        resumed++;
      }
      if (finished) expect(res, `trial ${t}`).toMatchObject({ attempts: 0, fetchedBytes: 0 }); // finished before the kill
      lines.push(
        `  #${t} kill@${killAfterMs}ms ${killed ? 'killed' : 'finished first'} left=[${left}] part=${part ?? '-'} reported=${reported}` +
          ` cleaned=[${cleaned.join(',')}] -> ${res.attempts === 0 ? 'already complete' : `resumed from ${res.resumedFrom}, fetched ${res.fetchedBytes}, range=${req?.range ?? '-'}`}, sha256 ok`,
      );
    }
    console.log(`downloader SIGKILL test: ${TRIALS} trials, ${resumed} resumed mid-file, ${TRIALS} ended with the right sha256\n${lines.join('\n')}`);
    expect(resumed).toBeGreaterThanOrEqual(3);
  });
});
