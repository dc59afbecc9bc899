import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../core/logger.js';
import type { Clock } from '../../core/clock.js';
import type { HttpConfig } from '../../config/http-schema.js';

export interface HttpListenerDeps {
  logger: Logger;
  clock: Clock;
  config: Pick<HttpConfig, 'host' | 'port'>;
  handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  /** First retry delay after a failed bind; doubles up to a minute. */
  retryMs?: number;
}

const MAX_RETRY_MS = 60_000;

/** A bind failure in words, naming the config key to change. */
export function bindErrorMessage(err: NodeJS.ErrnoException, host: string, port: number): string {
  const where = `${host}:${port}`;
  switch (err.code) {
    case 'EADDRINUSE':
      return `http.port: ${where} is already in use (another edge-classifier or another program); set http.port to a free port, or http.enabled: false`;
    case 'EACCES':
      return `http.port: no permission to listen on ${where} (ports below 1024 need CAP_NET_BIND_SERVICE); use a port above 1024`;
    case 'EADDRNOTAVAIL':
      return `http.host: ${host} is not an address of this machine (yet?); use 127.0.0.1, 0.0.0.0 or an address of one of its interfaces`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `http.host: cannot resolve "${host}"`;
    default:
      return `http.host/http.port: cannot listen on ${where}: ${err.message}`;
  }
}

/**
 * node:http on the configured address. A failed bind is not fatal: classification and MQTT
 * are the product and must not stop because the health/preview port is taken (a restart
 * would not free it either). The failure is logged as an error naming the key, and the bind is
 * retried in the background (an address that appears later, a port that gets freed).
 */
export class HttpListener {
  private server: Server | undefined;
  private listening = false;
  private readonly abort = new AbortController();
  private retrying: Promise<void> | undefined;

  constructor(private readonly deps: HttpListenerDeps) {}

  /** http://host:port/ once listening. */
  get url(): string | undefined {
    const addr = this.listening ? (this.server?.address() as AddressInfo | null) : null;
    if (!addr) return undefined;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    return `http://${host}:${addr.port}/`;
  }

  /** The port bound, once listening. */
  get port(): number | undefined {
    const addr = this.listening ? (this.server?.address() as AddressInfo | null) : null;
    return addr?.port;
  }

  async start(): Promise<void> {
    const { logger, config } = this.deps;
    const server = createServer((req, res) => {
      this.deps.handle(req, res).catch((err: unknown) => {
        // Handlers answer their own errors; this is the last resort.
        logger.error({ err: (err as Error).message, url: req.url }, 'HTTP request failed');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        res.end();
      });
    });
    this.server = server;
    const err = await this.listen(server);
    if (!err) return;
    logger.error(
      { err: bindErrorMessage(err, config.host, config.port), code: err.code },
      'HTTP server cannot listen; health, metrics and preview are unavailable until it can (retrying in the background)',
    );
    this.retrying = this.retry(server, err);
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.retrying;
    const server = this.server;
    this.server = undefined;
    if (!server || !this.listening) return;
    this.listening = false;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      // Keep-alive sockets and open event streams would hold close() up indefinitely.
      server.closeAllConnections();
    });
  }

  private async retry(server: Server, first: NodeJS.ErrnoException): Promise<void> {
    const { logger, clock, config } = this.deps;
    let delay = this.deps.retryMs ?? 5_000;
    let last = first.code;
    while (!this.abort.signal.aborted) {
      await clock.sleep(delay, this.abort.signal);
      if (this.abort.signal.aborted) return;
      const err = await this.listen(server);
      if (!err) return;
      // Every retry failing the same way is noise; a different failure is news.
      if (err.code !== last) logger.error({ err: bindErrorMessage(err, config.host, config.port), code: err.code }, 'HTTP server still cannot listen');
      else logger.debug({ code: err.code }, 'HTTP server still cannot listen');
      last = err.code;
      delay = Math.min(MAX_RETRY_MS, delay * 2);
    }
  }

  private listen(server: Server): Promise<NodeJS.ErrnoException | undefined> {
    const { host, port } = this.deps.config;
    return new Promise((resolve) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        server.off('listening', onListening);
        resolve(err);
      };
      const onListening = (): void => {
        server.off('error', onError);
        this.listening = true;
        server.on('error', (err) => this.deps.logger.error({ err: err.message }, 'HTTP server error'));
        this.deps.logger.info({ url: this.url }, 'HTTP server listening');
        resolve(undefined);
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen(port, host);
    });
  }
}
