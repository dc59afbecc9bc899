import { createServer, request as httpRequest, STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { freePort } from './ports.js';

// A reverse proxy in front of nginx that misbehaves on cue. Each request takes the next fault
// from a queue (then passes through). Responses are written raw onto the socket, one per
// connection (`Connection: close`), so a test controls every byte: a Content-Length that lies,
// a reset (RST) or a clean close (FIN) mid-body, a socket that goes silent, an endless body.

export type Fault =
  | { kind: 'pass' }
  /** Send `afterBytes` body bytes, then reset the connection (RST). */
  | { kind: 'reset'; afterBytes: number }
  /** Send `afterBytes` body bytes, then nothing, with the socket left open. */
  | { kind: 'stall'; afterBytes: number }
  /** Answer this status with a short text body; nginx is not asked. */
  | { kind: 'status'; status: number; retryAfter?: number }
  /** Declare the real Content-Length, send `afterBytes`, then close cleanly (FIN). */
  | { kind: 'truncate'; afterBytes: number }
  /** Declare Content-Length = real + delta, send the real body, close. */
  | { kind: 'length'; delta: number }
  /** Chunked: the real body, then filler bytes until the client goes away (capped at 1 GiB). */
  | { kind: 'endless' }
  /** Drop Range and If-Range before asking nginx: a server without Range support (200). */
  | { kind: 'ignore-range' };

export interface ProxiedRequest {
  method: string;
  path: string;
  range: string | undefined;
  ifRange: string | undefined;
  ifNoneMatch: string | undefined;
  ifModifiedSince: string | undefined;
  fault: Fault['kind'];
  /** The status sent to the client (after the fault). */
  status: number | undefined;
  /** Body bytes written to the client socket. */
  bodyBytes: number;
}

const ENDLESS_CAP = 1024 ** 3;
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade']);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Writes with backpressure; false once the socket is gone (the client hung up). */
async function send(sock: Socket, buf: Buffer): Promise<boolean> {
  if (sock.destroyed) return false;
  if (!sock.write(buf)) {
    await new Promise<void>((resolve) => {
      const done = (): void => (sock.off('drain', done), sock.off('close', done), resolve());
      sock.on('drain', done);
      sock.on('close', done);
    });
  }
  return !sock.destroyed;
}

export class FaultProxy {
  readonly requests: ProxiedRequest[] = [];
  /** Throttles every body (the SIGKILL test slows downloads down); undefined: full speed. */
  bytesPerSecond: number | undefined;
  private readonly faults: Fault[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly upstreamPort: number,
  ) {
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined); // resets and hang-ups are the point here
    });
    server.on('request', (req: IncomingMessage) => void this.handle(req));
  }

  static async start(upstreamPort: number, opts: { bytesPerSecond?: number } = {}): Promise<FaultProxy> {
    const port = await freePort();
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    const p = new FaultProxy(server, port, upstreamPort);
    p.bytesPerSecond = opts.bytesPerSecond;
    return p;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}/${path.replace(/^\//, '')}`;
  }

  /** Faults for the next requests, in order; after them, requests pass through. */
  enqueue(...faults: Fault[]): void {
    this.faults.push(...faults);
  }

  get pendingFaults(): number {
    return this.faults.length;
  }

  /** Forgets queued faults and recorded requests. */
  clear(): void {
    this.faults.length = 0;
    this.requests.length = 0;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage): Promise<void> {
    const sock = req.socket;
    const fault = this.faults.shift() ?? { kind: 'pass' };
    const h = (name: string): string | undefined => {
      const v = req.headers[name];
      return Array.isArray(v) ? v.join(', ') : v;
    };
    const rec: ProxiedRequest = {
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      range: h('range'),
      ifRange: h('if-range'),
      ifNoneMatch: h('if-none-match'),
      ifModifiedSince: h('if-modified-since'),
      fault: fault.kind,
      status: undefined,
      bodyBytes: 0,
    };
    this.requests.push(rec);
    if (fault.kind === 'status') {
      const body = Buffer.from(`injected ${fault.status}\n`);
      const extra = fault.retryAfter !== undefined ? `Retry-After: ${fault.retryAfter}\r\n` : '';
      rec.status = fault.status;
      const head = `HTTP/1.1 ${fault.status} ${STATUS_CODES[fault.status] ?? 'Error'}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n${extra}Connection: close\r\n\r\n`;
      if (await send(sock, Buffer.concat([Buffer.from(head), body]))) sock.end();
      return;
    }

    const headers: Record<string, string | string[] | undefined> = { ...req.headers, host: `127.0.0.1:${this.upstreamPort}`, connection: 'close' };
    if (fault.kind === 'ignore-range') {
      delete headers.range;
      delete headers['if-range'];
    }
    const upReq = httpRequest({ host: '127.0.0.1', port: this.upstreamPort, method: req.method, path: req.url, headers, agent: false });
    sock.once('close', () => upReq.destroy());
    let up: IncomingMessage;
    try {
      up = await new Promise<IncomingMessage>((resolve, reject) => {
        upReq.once('response', resolve);
        upReq.once('error', reject);
        upReq.end();
      });
    } catch {
      sock.destroy();
      return;
    }
    try {
      await this.relay(sock, up, fault, rec);
    } catch {
      // The client hung up (its close destroys the upstream request, which rejects the reads).
      sock.destroy();
    } finally {
      upReq.destroy();
    }
  }

  /** Status line and headers, then the body with the fault applied. */
  private async relay(sock: Socket, up: IncomingMessage, fault: Fault, rec: ProxiedRequest): Promise<void> {
    const status = up.statusCode ?? 502;
    rec.status = status;
    const lines = [`HTTP/1.1 ${status} ${up.statusMessage ?? ''}`];
    for (let i = 0; i + 1 < up.rawHeaders.length; i += 2) {
      const name = up.rawHeaders[i] ?? '';
      const lower = name.toLowerCase();
      if (HOP_BY_HOP.has(lower)) continue;
      if (lower === 'content-length' && fault.kind === 'endless') continue;
      const value = lower === 'content-length' && fault.kind === 'length' ? String(Number(up.rawHeaders[i + 1]) + fault.delta) : up.rawHeaders[i + 1];
      lines.push(`${name}: ${value ?? ''}`);
    }
    const chunked = fault.kind === 'endless';
    if (chunked) lines.push('Transfer-Encoding: chunked');
    lines.push('Connection: close', '', '');
    if (!(await send(sock, Buffer.from(lines.join('\r\n'))))) return;

    const limit = fault.kind === 'reset' || fault.kind === 'stall' || fault.kind === 'truncate' ? fault.afterBytes : Infinity;
    const out = async (buf: Buffer): Promise<boolean> => {
      // Throttled in slices of ~1/20 s so that a kill lands at a random byte, not a chunk edge.
      const slice = this.bytesPerSecond ? Math.max(1024, Math.floor(this.bytesPerSecond / 20)) : buf.length;
      for (let off = 0; off < buf.length; off += slice) {
        const piece = buf.subarray(off, off + slice);
        const framed = chunked ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]) : piece;
        if (!(await send(sock, framed))) return false;
        rec.bodyBytes += piece.length;
        if (this.bytesPerSecond) await sleep((piece.length / this.bytesPerSecond) * 1000);
      }
      return true;
    };

    for await (const chunk of up) {
      const buf = chunk as Buffer;
      const room = limit - rec.bodyBytes;
      if (!(await out(room < buf.length ? buf.subarray(0, Math.max(0, room)) : buf))) return;
      if (rec.bodyBytes >= limit) break;
    }
    if (fault.kind === 'reset' && rec.bodyBytes >= limit) {
      // An RST drops whatever is still in the kernel's send queue: let loopback deliver the
      // bytes first, so that the client really holds about `afterBytes` when the reset lands.
      await sleep(50);
      if (!sock.destroyed) sock.resetAndDestroy();
      return;
    }
    // The socket stays open and silent; the client gives up (or stop() closes it).
    if (fault.kind === 'stall' && rec.bodyBytes >= limit) return;
    if (chunked) {
      // Bounded: ENDLESS_CAP bytes at most, and it stops when the client hangs up.
      const filler = Buffer.alloc(64 * 1024, 0x5a);
      while (rec.bodyBytes < ENDLESS_CAP) if (!(await out(filler))) return;
      await send(sock, Buffer.from('0\r\n\r\n'));
    }
    sock.end();
  }
}
