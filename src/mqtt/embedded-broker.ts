import { createServer, type Server, type AddressInfo } from 'node:net';
import { Aedes } from 'aedes';
import type { Logger } from '../ops/logger.js';

export interface EmbeddedBrokerDeps {
  logger: Logger;
  config: { host: string; port: number };
}

/** An in-process MQTT broker (aedes) for setups without one; listens on loopback by default. */
export class EmbeddedBroker {
  private broker: Aedes | undefined;
  private server: Server | undefined;

  constructor(private readonly deps: EmbeddedBrokerDeps) {}

  /** The bound port (useful with port 0). */
  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? this.deps.config.port;
  }

  get url(): string {
    return `mqtt://${this.deps.config.host}:${this.port}`;
  }

  async start(): Promise<void> {
    const { host, port } = this.deps.config;
    const broker = await Aedes.createBroker();
    broker.on('clientError', (client, err) => this.deps.logger.debug({ client: client.id, err: err.message }, 'client error'));
    const server = createServer(broker.handle);
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(new Error(`embedded MQTT broker cannot listen on ${host}:${port}: ${err.message}`)),
      );
      server.listen(port, host, () => resolve());
    });
    this.broker = broker;
    this.server = server;
    this.deps.logger.info({ url: this.url }, 'embedded MQTT broker listening');
  }

  async stop(): Promise<void> {
    const { server, broker } = this;
    this.server = undefined;
    this.broker = undefined;
    await new Promise<void>((resolve) => (broker ? broker.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }
}
