import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { SseHub } from '../../src/service/http/sse.js';
import { HttpListener } from '../../src/service/http/listener.js';
import { createSystemClock } from '../../src/core/clock.js';
import { connectSse, until, type SseClient } from '../helpers/sse-client.js';

// The HTTP server's socket-facing parts on real loopback sockets: the event-stream hub (limits,
// late joiners, slow clients, shutdown) and the listener (bind failure, retry, stop).

describe('SseHub on a real server', () => {
  let server: Server | undefined;
  let hub: SseHub | undefined;

  afterEach(async () => {
    hub?.stop();
    server?.closeAllConnections();
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
    server = undefined;
  });

  async function serve(maxClients: number): Promise<number> {
    const h = new SseHub({ maxClients, heartbeatMs: 60_000, retryMs: 1_500 });
    hub = h;
    h.start();
    server = createHttpServer((req, res) => {
      if (!h.add(req, res)) {
        res.writeHead(503);
        res.end('full');
      }
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    return (server.address() as AddressInfo).port;
  }

  it('streams to a bounded number of clients, gives late joiners the sticky state, and ends every stream on stop', async () => {
    const port = await serve(2);
    const a = await connectSse(`http://127.0.0.1:${port}/events`);
    hub!.broadcast('status', { n: 1 }, 'status');
    hub!.broadcast('note', { once: true });
    const b = await connectSse(`http://127.0.0.1:${port}/events`);
    expect(a.res.statusCode).toBe(200);
    expect(a.res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    const c = await connectSse(`http://127.0.0.1:${port}/events`);
    expect(c.res.statusCode).toBe(503);
    await until(() => a.events().length === 2 && b.events().length === 1, 'events');
    expect(a.text().startsWith('retry: 1500\n\n')).toBe(true);
    expect(a.events()).toEqual([
      { event: 'status', data: { n: 1 } },
      { event: 'note', data: { once: true } },
    ]);
    // The late joiner gets the latest status, not the one-off event it missed.
    expect(b.events()).toEqual([{ event: 'status', data: { n: 1 } }]);
    // A client that leaves frees its place.
    a.res.destroy();
    await until(() => hub!.size === 1, 'client removed');
    const d = await connectSse(`http://127.0.0.1:${port}/events`);
    expect(d.res.statusCode).toBe(200);
    hub!.stop();
    await Promise.all([b.closed, d.closed]);
    expect(hub!.size).toBe(0);
  });

  it('does not buffer without bound for a client that stops reading, and brings it up to date when it drains', async () => {
    const port = await serve(4);
    const slow = await connectSse(`http://127.0.0.1:${port}/events`);
    const fast = await connectSse(`http://127.0.0.1:${port}/events`);
    slow.res.pause();
    const N = 600;
    const pad = 'x'.repeat(32 * 1024);
    for (let seq = 1; seq <= N; seq++) {
      hub!.broadcast('frame', { seq, pad }, 'frame:door');
      // Let the sockets move: the fast client keeps up, the slow one's buffers fill.
      await new Promise((r) => setTimeout(r, 1));
    }
    const seqs = (c: SseClient) => c.events().map((e) => (e.data as { seq: number }).seq);
    await until(() => seqs(fast).at(-1) === N, 'the fast client to get everything');
    slow.res.resume();
    await until(() => seqs(slow).at(-1) === N, 'the slow client to catch up with the latest frame');
    // 600 x 32 KiB = 19 MiB sent; the paused client was skipped once its socket was full.
    expect(seqs(fast)).toEqual(Array.from({ length: N }, (_, i) => i + 1));

    expect(seqs(slow).length).toBeLessThan(N / 2);
  });
});

describe('HttpListener', () => {
  const logs: { level: number; msg: string; err?: string; url?: string }[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s) as (typeof logs)[number]) });
  afterEach(() => void (logs.length = 0));

  it('logs a port in use as an error naming http.port, keeps retrying, and serves once the port is free', async () => {
    const squatter = createTcpServer();
    await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
    const port = (squatter.address() as AddressInfo).port;
    const listener = new HttpListener({
      logger,
      clock: createSystemClock(),
      config: { host: '127.0.0.1', port },
      retryMs: 100,
      handle: (_req, res) => Promise.resolve(void res.end('hello')),
    });
    try {
      await listener.start();
      expect(listener.url).toBeUndefined();
      const failed = logs.find((l) => l.level === 50);
      expect(failed?.err).toMatch(new RegExp(`^http\\.port: 127\\.0\\.0\\.1:${port} is already in use`));
      await new Promise<void>((r) => squatter.close(() => r()));
      await until(() => listener.url !== undefined, 'the listener to bind');
      expect(listener.url).toBe(`http://127.0.0.1:${port}/`);
      expect(await (await fetch(listener.url!)).text()).toBe('hello');
      expect(logs.filter((l) => l.level === 50)).toHaveLength(1);
      expect(logs.at(-1)).toMatchObject({ msg: 'HTTP server listening', url: `http://127.0.0.1:${port}/` });
    } finally {
      await listener.stop();
      squatter.close();
    }
  });

  it('stops promptly while retrying, and while responses are still open', async () => {
    const squatter = createTcpServer();
    await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
    const busy = new HttpListener({
      logger,
      clock: createSystemClock(),
      config: { host: '127.0.0.1', port: (squatter.address() as AddressInfo).port },
      retryMs: 60_000,
      handle: () => Promise.resolve(),
    });
    await busy.start();
    await busy.stop(); // would wait out the 60 s retry delay if the sleep were not aborted
    await new Promise<void>((r) => squatter.close(() => r()));

    const open = new HttpListener({
      logger,
      clock: createSystemClock(),
      config: { host: '127.0.0.1', port: 0 },
      // Never ends its responses, like an event stream.
      handle: (_req, res) => Promise.resolve(void res.writeHead(200).write('started')),
    });
    await open.start();
    const client = await connectSse(open.url!);
    await until(() => client.text() === 'started', 'the open response');
    await open.stop();
    await client.closed;
    expect(open.url).toBeUndefined();
  });
});
