import { hostname, networkInterfaces } from 'node:os';
import type { IncomingMessage } from 'node:http';
import type { Logger } from '../../core/logger.js';
import type { Clock } from '../../core/clock.js';
import type { HttpConfig } from '../../config/http-schema.js';
import { hostAllowed, isLoopback, misdirectedText, ownNames, parseHost, type HostName, type MachineNames } from './host-check.js';
import type { HttpAuth } from './http-auth.js';

// Who may talk to the HTTP server, asked before any route: the Host header names this server
// (else 421), then credentials if http.auth is set (else 401). /healthz needs no credentials:
// liveness probes (Docker, Kubernetes, monitoring) rarely carry any, and it tells nothing but
// ok/stalled, the version and the uptime. It is Host-checked like everything else.

export interface Refusal {
  status: number;
  headers: Record<string, string | string[]>;
  body: string;
}

export interface AccessGateDeps {
  logger: Logger;
  clock: Clock;
  config: Pick<HttpConfig, 'host' | 'allowed_hosts'>;
  auth: HttpAuth | undefined;
  /** The port being listened on (known once bound; port 0 picks one). */
  port: () => number | undefined;
  machine?: () => MachineNames;
}

/** Interface addresses change (DHCP, a cable plugged in): looked up again on a miss, at most this often. */
const REFRESH_MS = 10_000;
/** Distinct refused names logged as warnings; after that, debug (a scanner must not flood the journal). */
const MAX_LOGGED = 20;

const TEXT = { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };

export class AccessGate {
  private own: Set<string>;
  private refreshedAt: number;
  private readonly extra: HostName[];
  private readonly logged = new Set<string>();
  private readonly machine: () => MachineNames;

  constructor(private readonly deps: AccessGateDeps) {
    this.machine = deps.machine ?? (() => ({ interfaces: networkInterfaces(), hostname: hostname() }));
    this.extra = deps.config.allowed_hosts.map((h) => parseHost(h)).filter((h): h is HostName => h !== undefined);
    this.own = ownNames(deps.config.host, this.machine());
    this.refreshedAt = deps.clock.monotonic();
    deps.logger.debug({ names: [...this.own], allowed_hosts: deps.config.allowed_hosts }, 'HTTP answers to these names');
  }

  /** Whether http.host reaches beyond this machine. */
  get exposed(): boolean {
    const listen = parseHost(this.deps.config.host.includes(':') ? `[${this.deps.config.host}]` : this.deps.config.host)?.name;
    return listen === undefined || !isLoopback(listen);
  }

  /** undefined: go ahead; else the answer to send instead. `open`: the route needs no credentials (/healthz). */
  async check(req: IncomingMessage, open: boolean): Promise<Refusal | undefined> {
    const host = req.headers.host;
    if (!this.hostOk(host)) {
      this.logRefused(host, req);
      return { status: 421, headers: TEXT, body: misdirectedText(host) };
    }
    const auth = this.deps.auth;
    if (!auth || open) return undefined;
    const verdict = await auth.check(req.headers.authorization);
    if (verdict === 'ok') return undefined;
    if (verdict === 'busy') return { status: 503, headers: { ...TEXT, 'retry-after': '1' }, body: 'too many password checks at once; try again\n' };
    return {
      status: 401,
      headers: { ...TEXT, 'www-authenticate': auth.challenges() },
      body: '401 Unauthorized: credentials from http.auth are required (a bearer token or a basic-auth user)\n',
    };
  }

  private hostOk(header: string | undefined): boolean {
    const port = this.deps.port();
    if (port === undefined) return false;
    const rules = () => ({ own: this.own, port, extra: this.extra });
    if (hostAllowed(header, rules())) return true;
    const now = this.deps.clock.monotonic();
    if (now - this.refreshedAt < REFRESH_MS) return false;
    this.refreshedAt = now;
    this.own = ownNames(this.deps.config.host, this.machine());
    return hostAllowed(header, rules());
  }

  private logRefused(host: string | undefined, req: IncomingMessage): void {
    const key = host ?? '';
    const first = !this.logged.has(key) && this.logged.size < MAX_LOGGED;
    if (first) this.logged.add(key);
    const fields = { host: host?.slice(0, 100) ?? null, url: req.url?.slice(0, 200), from: req.socket.remoteAddress };
    const msg = 'HTTP request for another host name refused (421); if it is a name of this machine, add it to http.allowed_hosts';
    if (first) this.deps.logger.warn(fields, msg);
    else this.deps.logger.debug(fields, msg);
  }
}
