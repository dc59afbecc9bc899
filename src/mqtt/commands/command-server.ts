import { z } from 'zod';
import type { IClientPublishOptions } from 'mqtt';
import type { Logger } from '../../core/logger.js';
import type { MqttPublisher } from '../mqtt-publisher.js';
import { formatPath } from '../../config/config-error.js';
import type { CommandAccess, CommandAuth, Credentials } from './command-auth.js';
import { parseRequest, replyTopic, type RequestProperties } from './command-request.js';
import type { ResponsePayload } from '../payloads.js';

/** A command: what it may do, its parameters' schema and what it does. Handlers throw to answer with an error. */
export interface Command<S extends z.ZodType = z.ZodType> {
  access: CommandAccess;
  params: S;
  run(params: z.infer<S>): Promise<unknown>;
}

export interface CommandServerDeps {
  logger: Logger;
  config: { max_payload_bytes: number };
  auth: Pick<CommandAuth, 'decide'>;
  mqtt: Pick<MqttPublisher, 'subscribe' | 'publish' | 'topics'>;
  commands: Record<string, Command>;
  /** Requests handled at once; more get a "busy" error instead of piling up. */
  maxConcurrent?: number;
}

/** The reply on B/D/response/<command>; its schema is payload-schemas/response.ts. */
export type CommandResponse = ResponsePayload;

type PrivateReply = Pick<IClientPublishOptions, 'properties'> & { topic: string };

// Refusals are logged, but a client hammering the topic must not flood the journal.
const REFUSAL_LOG_EVERY_MS = 10_000;

/**
 * Request/response over MQTT: `B/D/request/<command>` with `{"transaction":..., ...params}`
 * is answered on `B/D/response/<command>` (and, for an authorised MQTT v5 request, on its
 * response topic with its correlation data). Malformed JSON, oversized payloads, wrong types,
 * unknown commands and unauthorised requests get an error response; nothing a client sends
 * can crash the daemon.
 */
export class CommandServer {
  private running = 0;
  private handled = 0;
  private refusedCount = 0;
  private lastRefusalLog = Number.NEGATIVE_INFINITY;

  constructor(private readonly deps: CommandServerDeps) {}

  get count(): number {
    return this.handled;
  }

  /** Requests refused as not authorised or turned off. */
  get refused(): number {
    return this.refusedCount;
  }

  async start(): Promise<void> {
    const { mqtt } = this.deps;
    const prefix = mqtt.topics.request('');
    mqtt.subscribe(`${prefix}+`, (topic, payload, properties) => {
      void this.handle(topic.slice(prefix.length), payload, properties);
    });
    await Promise.resolve();
  }

  async stop(): Promise<void> {
    await Promise.resolve();
  }

  /** Never rejects: every outcome is a response. */
  async handle(command: string, payload: Buffer, properties?: RequestProperties): Promise<CommandResponse> {
    this.handled++;
    let transaction: CommandResponse['transaction'] = null;
    // Set once the request is authorised: only then may it choose where its answer also goes.
    const route: { private?: PrivateReply | undefined } = {};
    const reply = (r: Omit<CommandResponse, 'transaction'>): CommandResponse => {
      const response = { ...r, transaction };
      this.respond(command, response, properties, route.private);
      return response;
    };
    const fail = (error: string): CommandResponse => reply({ status: 'error', data: null, error });

    const request = parseRequest(payload, properties, this.deps.config.max_payload_bytes);
    if (!request.ok) return fail(request.error);
    transaction = request.transaction;
    const cmd = Object.hasOwn(this.deps.commands, command) ? this.deps.commands[command] : undefined;
    if (!cmd) return fail(`unknown command "${command.slice(0, 64)}"; known: ${Object.keys(this.deps.commands).join(', ')}`);
    // Authorisation before parameters: an outsider learns nothing about what a command accepts.
    const decision = this.deps.auth.decide(cmd.access, request.credentials);
    if (!decision.allowed) {
      this.noteRefusal(command, request.credentials, decision.reason);
      return fail(decision.reason);
    }
    route.private = replyTopic(properties, this.deps.mqtt.topics.base);
    const parsed = cmd.params.safeParse(request.params);
    if (!parsed.success) {
      return fail(parsed.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join('; '));
    }
    if (this.running >= (this.deps.maxConcurrent ?? 8)) return fail('busy: too many requests in progress; retry later');
    if (cmd.access === 'control') this.deps.logger.info({ command, client: decision.client }, 'control command');
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

  private noteRefusal(command: string, creds: Credentials, reason: string): void {
    this.refusedCount++;
    const now = Date.now();
    if (now - this.lastRefusalLog < REFUSAL_LOG_EVERY_MS) return;
    this.lastRefusalLog = now;
    this.deps.logger.warn({ command: command.slice(0, 64), client: creds.client?.slice(0, 64) ?? null, refused: this.refusedCount, reason }, 'command refused');
  }

  private respond(
    command: string,
    response: CommandResponse,
    properties: RequestProperties,
    privateReply: PrivateReply | undefined,
  ): void {
    // The command name comes from the client: keep the topic sane whatever it sent.
    const name = /^[A-Za-z0-9_-]{1,64}$/.test(command) ? command : 'invalid';
    const body = JSON.stringify(response);
    const correlation = properties?.correlationData ? { properties: { correlationData: properties.correlationData } } : {};
    try {
      this.deps.mqtt.publish(this.deps.mqtt.topics.response(name), body, { qos: 1, ...correlation });
      if (privateReply) this.deps.mqtt.publish(privateReply.topic, body, { qos: 1, ...(privateReply.properties ? { properties: privateReply.properties } : {}) });
    } catch (err) {
      this.deps.logger.warn({ command: name, err: (err as Error).message }, 'response not sent');
    }
  }
}
