import { z } from 'zod';
import type { Logger } from '../../ops/logger.js';
import type { MqttPublisher } from '../mqtt-publisher.js';
import { formatPath } from '../../config/load.js';

/** A command: its parameters' schema and what it does. Handlers throw to answer with an error. */
export interface Command<S extends z.ZodType = z.ZodType> {
  params: S;
  run(params: z.infer<S>): Promise<unknown>;
}

export interface CommandServerDeps {
  logger: Logger;
  config: { max_payload_bytes: number };
  mqtt: Pick<MqttPublisher, 'subscribe' | 'publish' | 'topics'>;
  commands: Record<string, Command>;
  /** Requests handled at once; more get a "busy" error instead of piling up. */
  maxConcurrent?: number;
}

export interface CommandResponse {
  status: 'ok' | 'error';
  data: unknown;
  error: string | null;
  transaction: string | number | null;
}

const Transaction = z.union([z.string().max(256), z.number()]);

/**
 * Request/response over MQTT: `B/D/request/<command>` with `{"transaction":..., ...params}`
 * is answered on `B/D/response/<command>`. Malformed JSON, oversized payloads, wrong types
 * and unknown commands get an error response; nothing a client sends can crash the daemon.
 */
export class CommandServer {
  private running = 0;
  private handled = 0;

  constructor(private readonly deps: CommandServerDeps) {}

  get count(): number {
    return this.handled;
  }

  async start(): Promise<void> {
    const { mqtt } = this.deps;
    const prefix = mqtt.topics.request('');
    mqtt.subscribe(`${prefix}+`, (topic, payload) => {
      void this.handle(topic.slice(prefix.length), payload);
    });
    await Promise.resolve();
  }

  async stop(): Promise<void> {
    await Promise.resolve();
  }

  /** Never rejects: every outcome is a response. */
  async handle(command: string, payload: Buffer): Promise<CommandResponse> {
    this.handled++;
    let transaction: CommandResponse['transaction'] = null;
    const reply = (r: Omit<CommandResponse, 'transaction'>): CommandResponse => {
      const response = { ...r, transaction };
      this.respond(command, response);
      return response;
    };
    const fail = (error: string): CommandResponse => reply({ status: 'error', data: null, error });

    if (payload.length > this.deps.config.max_payload_bytes) {
      return fail(`payload of ${payload.length} bytes is over the limit of ${this.deps.config.max_payload_bytes}`);
    }
    let body: unknown;
    try {
      body = payload.length === 0 ? {} : JSON.parse(payload.toString('utf8'));
    } catch (err) {
      return fail(`malformed JSON: ${(err as Error).message}`);
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) return fail('the request must be a JSON object');
    const { transaction: tx, ...params } = body as Record<string, unknown>;
    if (tx !== undefined) {
      const parsed = Transaction.safeParse(tx);
      if (!parsed.success) return fail('transaction: expected a string (at most 256 characters) or a number');
      transaction = parsed.data;
    }
    const cmd = Object.hasOwn(this.deps.commands, command) ? this.deps.commands[command] : undefined;
    if (!cmd) return fail(`unknown command "${command.slice(0, 64)}"; known: ${Object.keys(this.deps.commands).join(', ')}`);
    const parsed = cmd.params.safeParse(params);
    if (!parsed.success) {
      return fail(parsed.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join('; '));
    }
    if (this.running >= (this.deps.maxConcurrent ?? 8)) return fail('busy: too many requests in progress; retry later');
    this.running++;
    try {
      const data = await cmd.run(parsed.data);
      return reply({ status: 'ok', data: data ?? null, error: null });
    } catch (err) {
      return fail((err as Error).message);
    } finally {
      this.running--;
    }
  }

  private respond(command: string, response: CommandResponse): void {
    // The command name comes from the client: keep the topic sane whatever it sent.
    const name = /^[A-Za-z0-9_-]{1,64}$/.test(command) ? command : 'invalid';
    try {
      this.deps.mqtt.publish(this.deps.mqtt.topics.response(name), JSON.stringify(response), { qos: 1 });
    } catch (err) {
      this.deps.logger.warn({ command: name, err: (err as Error).message }, 'response not sent');
    }
  }
}
