import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pino } from 'pino';
import { createSystemClock } from '../../src/core/clock.js';
import { Downloader } from '../../src/updates/downloader.js';
import { updatesFetch } from '../../src/updates/http-client.js';
import { tempDir } from '../helpers/fixtures.js';
import { Nginx } from '../helpers/nginx.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { freePort } from '../helpers/ports.js';

// nodejs/undici#5360: when a response body is paused by backpressure (the reader is slower than
// the network: an SD card) and the server closes the connection (keep-alive off, HTTP/1.0,
// `Connection: close`), some undici versions throw an uncatchable AssertionError from the
// socket's 'end' handler and the whole daemon dies. The update path's client
// (src/updates/http-client.ts) must survive every such close, on every Node line
// (`npm run test:node-lines` runs this file under Node 22, 24 and 26 too). With a crashing
// client, this file fails with an unhandled AssertionError (`assert(!this.paused)`).

const MiB = 1024 * 1024;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A slow SD card: a Writable that takes `bytesPerSecond`, applying backpressure upstream. */
function slowSink(bytesPerSecond: number, into: Buffer[]): Writable {
  return new Writable({
    highWaterMark: 16 * 1024,
    write(chunk: Buffer, _enc, done) {
      into.push(chunk);
      setTimeout(done, (chunk.length / bytesPerSecond) * 1000);
    },
  });
}

/** The update client with a throttled body: what the downloader sees when its disk is slow. */
function slowFetch(bytesPerSecond: number): typeof fetch {
  return async (input, init) => {
    const res = await updatesFetch(input, init);
    const throttle = new TransformStream<Uint8Array, Uint8Array>(
      {
        async transform(chunk, c) {
          await sleep((chunk.byteLength / bytesPerSecond) * 1000);
          c.enqueue(chunk);
        },
      },
      { highWaterMark: 1 },
      { highWaterMark: 1 },
    );
    return new Response(res.body?.pipeThrough(throttle) ?? null, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

/**
 * A raw HTTP/1.1 server that answers every request with `Content-Length: declared`, sends `send`
 * bytes of `body` and then closes its side (FIN): complete when send === declared, cut short
 * otherwise. Nothing is read from it until the test says so.
 */
async function rawServer(body: Buffer, send: number): Promise<{ url: string; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    sock.once('data', () => {
      sock.write(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
      sock.end(body.subarray(0, send));
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${port}/model.onnx`,
    close: () => new Promise<void>((resolve) => (sockets.forEach((s) => s.destroy()), server.close(() => resolve()))),
  };
}

describe('server closes the connection while the body is paused (undici#5360)', () => {
  let www: string;
  let work: string;
  let nginx: Nginx;
  let proxy: FaultProxy;
  const model = randomBytes(8 * MiB);

  beforeAll(async () => {
    www = tempDir('ec-close-www-');
    writeFileSync(join(www, 'model.onnx'), model);
    // keepalive_timeout 0: nginx closes the connection after every response.
    nginx = await Nginx.start(www, { http: ['keepalive_timeout 0;'] });
    proxy = await FaultProxy.start(nginx.port);
  });
  afterAll(async () => {
    await proxy?.stop();
    await nginx?.stop();
    rmSync(www, { recursive: true, force: true });
  });
  beforeEach(() => {
    proxy.clear();
    work = tempDir('ec-close-');
    return () => rmSync(work, { recursive: true, force: true });
  });

  it('a body nobody reads yet, then FIN: read later, complete, no crash', async () => {
    const body = randomBytes(4 * MiB);
    const srv = await rawServer(body, body.length);
    try {
      for (let i = 0; i < 5; i++) {
        const res = await updatesFetch(srv.url);
        await sleep(300); // the parser pauses on a full queue and the FIN arrives meanwhile
        const got = Buffer.from(await res.arrayBuffer());
        expect(sha(got), `round ${i}`).toBe(sha(body));
      }
    } finally {
      await srv.close();
    }
  });

  it('a body cut short by FIN while paused: a catchable error, no crash', async () => {
    const body = randomBytes(4 * MiB);
    const srv = await rawServer(body, 2 * MiB);
    try {
      for (let i = 0; i < 3; i++) {
        const res = await updatesFetch(srv.url);
        await sleep(300);
        const err = await res.arrayBuffer().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, `round ${i}`).toBeInstanceOf(Error);
      }
    } finally {
      await srv.close();
    }
  });

  it('slow reader of an 8 MiB body from nginx with keep-alive off, 4 times', async () => {
    for (let i = 0; i < 4; i++) {
      const res = await updatesFetch(nginx.url('model.onnx'));
      expect(res.headers.get('connection'), 'nginx must close the connection').toBe('close');
      const chunks: Buffer[] = [];
      await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>), slowSink(40 * MiB, chunks));
      expect(sha(Buffer.concat(chunks)), `round ${i}`).toBe(sha(model));
    }
  });

  it('the downloader with a slow disk: whole bodies from nginx, and a FIN mid-body through the proxy, resumed', async () => {
    const logger = pino({ level: 'silent' });
    const d = new Downloader({ logger, clock: createSystemClock(), fetch: slowFetch(40 * MiB), config: { timeout_ms: 5000, retries: 3, backoff: { base_ms: 10, max_ms: 50 } } });
    const res = await d.download({ url: nginx.url('model.onnx'), size: model.length, sha256: sha(model), dest: join(work, 'a.onnx') });
    expect(res).toMatchObject({ attempts: 1, fetchedBytes: model.length });
    expect(sha(readFileSync(join(work, 'a.onnx')))).toBe(sha(model));

    // The proxy answers with `Connection: close` and cuts the first body at 3 MiB (a clean FIN).
    proxy.enqueue({ kind: 'truncate', afterBytes: 3 * MiB });
    const resumed = await d.download({ url: proxy.url('model.onnx'), size: model.length, sha256: sha(model), dest: join(work, 'b.onnx') });
    expect(sha(readFileSync(join(work, 'b.onnx')))).toBe(sha(model));
    expect(resumed.attempts).toBe(2);
    expect(resumed.resumedFrom).toBeGreaterThan(0);
    expect(proxy.requests.map((r) => [r.fault, r.status])).toEqual([
      ['truncate', 200],
      ['pass', 206],
    ]);
  });
});
