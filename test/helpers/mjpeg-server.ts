import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import sharp from 'sharp';
import { freePort } from './ports.js';
import { seededBytes } from '../../src/core/seeded-random.js';

export interface MjpegServerOptions {
  port?: number;
  fps?: number;
  width?: number;
  height?: number;
  /** When set, requests without these Basic credentials get 401. */
  auth?: { username: string; password: string };
}

const BOUNDARY = 'edgeclassifierframe';

/**
 * An IP camera on 127.0.0.1, written for the tests: `/stream` is multipart MJPEG
 * (multipart/x-mixed-replace, one JPEG per part at `fps`), `/snapshot` one JPEG per GET,
 * `/junk` a multipart stream whose parts are random bytes. Faults are injected by the test:
 * stall() keeps connections open but sends nothing, close() kills every connection and stops
 * listening, restart() listens again on the same port.
 */
export class MjpegServer {
  /** GETs seen, by path (snapshot polling is counted here). */
  readonly requests = new Map<string, number>();
  /** Parts (frames) written to stream clients. */
  partsSent = 0;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stalled = false;
  private frameIndex = 0;

  private constructor(
    readonly port: number,
    private readonly frames: Buffer[],
    private readonly opts: Required<Omit<MjpegServerOptions, 'auth' | 'port'>> & Pick<MjpegServerOptions, 'auth'>,
  ) {}

  static async start(options: MjpegServerOptions = {}): Promise<MjpegServer> {
    const opts = { fps: 10, width: 320, height: 240, ...options };
    const frames = await Promise.all(
      [
        [200, 40, 40],
        [40, 200, 40],
        [40, 40, 200],
        [200, 200, 40],
      ].map(([r, g, b]) =>
        sharp({ create: { width: opts.width, height: opts.height, channels: 3, background: { r: r!, g: g!, b: b! } } })
          .jpeg({ quality: 80 })
          .toBuffer(),
      ),
    );
    const server = new MjpegServer(options.port ?? (await freePort()), frames, opts);
    await server.restart();
    return server;
  }

  url(path: '/stream' | '/snapshot' | '/junk' = '/stream'): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** Connections stay open, but no more bytes are sent until resume(). */
  stall(): void {
    this.stalled = true;
  }

  resume(): void {
    this.stalled = false;
  }

  /** Kills every connection and stops listening (the camera is gone). */
  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers.clear();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Listens (again) on the same port, not stalled. */
  async restart(): Promise<void> {
    await this.close();
    this.stalled = false;
    const server = createServer((req, res) => this.handle(req, res));
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    this.requests.set(path, (this.requests.get(path) ?? 0) + 1);
    if (!this.authorized(req)) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="camera"' }).end();
      return;
    }
    if (path === '/snapshot') {
      if (this.stalled) return; // the response never comes
      const jpeg = this.nextFrame();
      res.writeHead(200, { 'Content-Type': 'image/jpeg', 'Content-Length': jpeg.length, 'Cache-Control': 'no-cache' });
      res.end(jpeg);
      return;
    }
    if (path !== '/stream' && path !== '/junk') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, {
      'Content-Type': `multipart/x-mixed-replace; boundary=${BOUNDARY}`,
      'Cache-Control': 'no-cache',
      Connection: 'close',
    });
    const junk = path === '/junk';
    const timer = setInterval(() => {
      if (this.stalled || res.writableNeedDrain) return;
      const body = junk ? seededBytes(this.frames[0]!.length, 0x12345678) : this.nextFrame();
      res.write(`--${BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: ${body.length}\r\n\r\n`);
      res.write(body);
      res.write('\r\n');
      this.partsSent += 1;
    }, 1000 / this.opts.fps);
    this.timers.add(timer);
    res.on('close', () => {
      clearInterval(timer);
      this.timers.delete(timer);
    });
  }

  private authorized(req: IncomingMessage): boolean {
    const { auth } = this.opts;
    if (!auth) return true;
    const expected = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
    return req.headers.authorization === expected;
  }

  private nextFrame(): Buffer {
    const frame = this.frames[this.frameIndex % this.frames.length]!;
    this.frameIndex += 1;
    return frame;
  }
}

