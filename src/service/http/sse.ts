import type { IncomingMessage, ServerResponse } from 'node:http';

/** One Server-Sent Event: `data` as JSON, one `data:` line per line (JSON.stringify has none, but a line break must never end the event early). */
export function sseEvent(event: string, data: unknown): string {
  if (/[\r\n]/.test(event)) throw new Error(`SSE event name must be one line: ${JSON.stringify(event)}`);
  const lines = JSON.stringify(data).split(/\r\n|\r|\n/);
  return `event: ${event}\n${lines.map((l) => `data: ${l}`).join('\n')}\n\n`;
}

/** A comment line: ignored by EventSource, keeps proxies and NAT from closing an idle stream. */
export function sseComment(text: string): string {
  return `: ${text.replace(/[\r\n]+/g, ' ')}\n\n`;
}

export interface SseHubDeps {
  maxClients: number;
  heartbeatMs: number;
  /** How long EventSource waits before reconnecting after the stream drops. */
  retryMs: number;
}

interface Client {
  res: ServerResponse;
  /** Events were skipped because it was behind: once drained it gets the latest state. */
  skipped: boolean;
}

/** Bytes queued for one client beyond which events are skipped (some seconds of events; not memory to worry about). */
const MAX_BUFFERED = 256 * 1024;

/**
 * The connected event streams. Bounded in number; a slow client never makes the daemon buffer
 * without limit: while too much is queued for it, it misses events, and once drained it is sent
 * the latest of each "sticky" event (status, each camera's last frame), which supersede the
 * missed ones.
 */
export class SseHub {
  private readonly clients = new Set<Client>();
  private readonly sticky = new Map<string, string>();
  private heartbeat: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly deps: SseHubDeps) {}

  get size(): number {
    return this.clients.size;
  }

  start(): void {
    this.closed = false;
    this.heartbeat = setInterval(() => this.write(sseComment('heartbeat')), this.deps.heartbeatMs);
    this.heartbeat.unref();
  }

  /** Takes over the response as an event stream; false (nothing written) when full or stopping. */
  add(req: IncomingMessage, res: ServerResponse): boolean {
    if (this.closed || this.clients.size >= this.deps.maxClients) return false;
    const client: Client = { res, skipped: false };
    this.clients.add(client);
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // nginx and similar proxies would otherwise hold events back in their buffers.
      'x-accel-buffering': 'no',
      connection: 'keep-alive',
    });
    res.write(`retry: ${this.deps.retryMs}\n\n`);
    for (const chunk of this.sticky.values()) res.write(chunk);
    res.on('drain', () => {
      if (!client.skipped) return;
      client.skipped = false;
      for (const chunk of this.sticky.values()) this.send(client, chunk);
    });
    const remove = (): void => void this.clients.delete(client);
    req.on('close', remove);
    res.on('close', remove);
    return true;
  }

  /** Sends to every client; with `stickyKey`, also kept for clients that connect (or drain) later. */
  broadcast(event: string, data: unknown, stickyKey?: string): void {
    const chunk = sseEvent(event, data);
    if (stickyKey !== undefined) this.sticky.set(stickyKey, chunk);
    this.write(chunk);
  }

  /** Ends every stream (EventSource clients will try to reconnect, and find the server gone). */
  stop(): void {
    this.closed = true;
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    for (const client of this.clients) client.res.end();
    this.clients.clear();
  }

  private write(chunk: string): void {
    for (const client of this.clients) {
      if (client.res.writableLength > MAX_BUFFERED) client.skipped = true;
      else this.send(client, chunk);
    }
  }

  private send(client: Client, chunk: string): void {
    if (client.res.writableEnded || client.res.destroyed) return;
    client.res.write(chunk);
  }
}
