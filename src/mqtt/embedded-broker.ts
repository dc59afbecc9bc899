import { readFileSync } from 'node:fs';
import { createServer, type Server, type AddressInfo, type Socket } from 'node:net';
import { Aedes, type AedesOptions, type Client } from 'aedes';
import type { z } from 'zod';
import type { Logger } from '../core/logger.js';
import { ConfigError } from '../config/load.js';
import { EmbeddedBrokerSchema, type EmbeddedBrokerConfig } from '../config/embedded-broker-schema.js';
import { PacketSizeGuard } from './broker/packet-size-guard.js';
import { GuardedSocket } from './broker/guarded-socket.js';
import { RetainedQuota } from './broker/retained-quota.js';
import { BrokerAuth, internalCredentials, type Credentials } from './broker/broker-auth.js';
import { ownTopics, requestTopics, type BrokerOwner } from './broker/own-topics.js';
import { LogLimiter } from './broker/log-limiter.js';

export interface EmbeddedBrokerDeps {
  logger: Logger;
  /** mqtt.embedded; parsed here, so `{ host, port }` alone gets every limit's default. */
  config: z.input<typeof EmbeddedBrokerSchema>;
  /** The daemon whose topics only its own client (with `credentials`) may write; without it none are reserved. */
  owner?: BrokerOwner;
}

/**
 * An in-process MQTT broker (aedes) for setups without one; listens on loopback by default.
 * Everything it holds is the daemon's memory, so it is bounded: packet size (checked on the
 * byte stream, before aedes buffers), connections, retained messages, time to CONNECT; and
 * only the daemon's own client writes the daemon's topics (docs/embedded-broker.md).
 */
export class EmbeddedBroker {
  /** For the daemon's own MQTT client, and no one else. */
  readonly credentials: Credentials = internalCredentials();
  private readonly config: EmbeddedBrokerConfig;
  private readonly logLimiter = new LogLimiter();
  private broker: Aedes | undefined;
  private server: Server | undefined;

  constructor(private readonly deps: EmbeddedBrokerDeps) {
    this.config = EmbeddedBrokerSchema.parse(deps.config);
  }

  /** The bound port (useful with port 0). */
  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? this.config.port;
  }

  get url(): string {
    return `mqtt://${this.config.host}:${this.port}`;
  }

  async start(): Promise<void> {
    const { host, port, max_connections } = this.config;
    const broker = await Aedes.createBroker(this.options());
    broker.on('clientError', (client, err) => this.deps.logger.debug({ client: client.id, err: err.message }, 'client error'));
    const server = createServer((socket) => this.accept(broker, socket));
    // Refused by node right after accept, before a byte is read.
    server.maxConnections = max_connections;
    server.on('drop', (d) => this.warn('drop', { remote: d?.remoteAddress, max_connections }, 'MQTT connection refused: mqtt.embedded.max_connections reached'));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(new Error(`embedded MQTT broker cannot listen on ${host}:${port}: ${err.message}`)),
      );
      server.listen(port, host, () => resolve());
    });
    this.broker = broker;
    this.server = server;
    this.deps.logger.info({ url: this.url, authentication: this.config.username !== undefined }, 'embedded MQTT broker listening');
    if (!isLoopback(host)) {
      this.deps.logger.warn(
        { url: this.url, authentication: this.config.username !== undefined },
        this.config.username === undefined
          ? 'embedded MQTT broker listens beyond loopback WITHOUT authentication: any host that reaches it reads every prediction and snapshot and can send commands; set mqtt.embedded.username and password_file, or host 127.0.0.1'
          : 'embedded MQTT broker listens beyond loopback: clients need mqtt.embedded.username, but traffic (passwords, snapshots) is plain TCP; prefer host 127.0.0.1 or a network you trust',
      );
    }
  }

  async stop(): Promise<void> {
    const { server, broker } = this;
    this.server = undefined;
    this.broker = undefined;
    await new Promise<void>((resolve) => (broker ? broker.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }

  private accept(broker: Aedes, socket: Socket): void {
    const remote = socket.remoteAddress;
    const guard = new PacketSizeGuard(this.config.max_packet_bytes);
    const conn = new GuardedSocket(socket, guard, (why) =>
      this.warn('packet', { remote, why, max_packet_bytes: this.config.max_packet_bytes }, 'MQTT connection closed: packet over mqtt.embedded.max_packet_bytes'),
    );
    broker.handle(conn);
  }

  private options(): AedesOptions {
    const { config, deps } = this;
    const auth = new BrokerAuth({ internal: this.credentials, user: readUser(config) });
    const quota = new RetainedQuota({ maxMessages: config.max_retained_messages, maxBytes: config.max_retained_bytes });
    const isOwn = deps.owner ? ownTopics(deps.owner) : () => false;
    const isRequest = deps.owner ? requestTopics(deps.owner) : () => false;
    return {
      connectTimeout: config.connect_timeout_ms,
      authenticate: (client, username, password, done) => {
        const verdict = auth.authenticate(client, client.id, username, password);
        if (verdict.ok) {
          // The daemon publishes whole JPEG frames (snapshots): its packets are not limited.
          if (verdict.daemon && client.conn instanceof GuardedSocket) client.conn.guard.limit = Infinity;
          return done(null, true);
        }
        this.warn('auth', { client: client.id, remote: remoteOf(client), why: verdict.why }, 'MQTT client refused');
        done(Object.assign(new Error(verdict.why), { returnCode: verdict.code }), false);
      },
      authorizePublish: (client, packet, done) => {
        if (auth.isDaemon(client)) return done(null);
        if (isOwn(packet.topic)) {
          // MQTT 3.1.1 cannot refuse one publish: aedes closes the connection (MQTT-3.3.5-2).
          this.warn('topic', { client: client?.id, topic: packet.topic }, "MQTT publish to the daemon's own topic refused");
          return done(new Error(`${packet.topic} is written by the daemon only`));
        }
        const size = typeof packet.payload === 'string' ? Buffer.byteLength(packet.payload) : packet.payload.length;
        if (packet.retain && !quota.admit(packet.topic, size)) {
          // Delivered to subscribers now, just not kept: refusing would disconnect the client,
          // which would reconnect and send it again.
          packet.retain = false;
          this.warn('retained', { client: client?.id, topic: packet.topic, count: quota.count, bytes: quota.totalBytes }, 'MQTT message passed on but not retained: mqtt.embedded.max_retained_messages/bytes reached');
        }
        done(null);
      },
      // Returning null skips that subscriber; the daemon's own client still gets the request.
      authorizeForward: (client, packet) => (isRequest(packet.topic) && !auth.isDaemon(client) ? null : packet),
    };
  }

  private warn(kind: string, fields: Record<string, unknown>, msg: string): void {
    const skipped = this.logLimiter.take(kind);
    if (skipped !== undefined) this.deps.logger.warn({ ...fields, ...(skipped > 0 ? { skipped } : {}) }, msg);
  }
}

function remoteOf(client: Client): string | undefined {
  return client.conn instanceof GuardedSocket ? client.conn.socket.remoteAddress : undefined;
}

/** 127.0.0.0/8, ::1 and localhost: reachable from this machine only. */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(host);
}

/** The configured user, its password read from password_file (trailing newline dropped). */
function readUser(config: EmbeddedBrokerConfig): Credentials | undefined {
  if (config.username === undefined || config.password_file === undefined) return undefined;
  let password: string;
  try {
    password = readFileSync(config.password_file, 'utf8').trim();
  } catch (err) {
    throw new ConfigError('config', [`mqtt.embedded.password_file: cannot read ${config.password_file}: ${(err as Error).message}`]);
  }
  if (password === '') throw new ConfigError('config', [`mqtt.embedded.password_file: ${config.password_file} is empty`]);
  return { username: config.username, password };
}
