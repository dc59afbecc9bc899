import { connect as mqttConnect, type IClientPublishOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import type { Logger } from '../core/logger.js';
import type { Clock } from '../core/clock.js';
import type { MqttConfig } from '../config/schema.js';
import { createTopics, type Topics } from './topics.js';
import { topicMatches } from './topic-match.js';
import { clientOptions, reconnectDelay } from './client-options.js';
import { redactUrl } from '../core/redact-url.js';
import type { AvailabilityState, CameraStatusPayload, LabelEventPayload, PredictionPayload, StatusPayload } from './payloads.js';
import type { LabelEvent } from '../rules/label-watch.js';
import { join } from 'node:path';
import { Outbox } from './outbox/index.js';
import { OutboxDelivery } from './outbox-delivery.js';

export interface MqttPublisherDeps {
  logger: Logger;
  clock: Clock;
  config: MqttConfig;
  deviceId: string;
  /** The broker URL to use (the embedded broker's when config.url is "embedded"). */
  url: string;
  embedded: boolean;
  /** The daemon's version, in every status message (including the last will). */
  version: string;
  /** Current model/provider/cameras, read on every (re)connect. */
  statusDetails: () => Omit<StatusPayload, 'v' | 'state' | 'device' | 'version' | 'ts'>;
  /** MQTT v5 message expiry for predictions, seconds (0: none). */
  predictionExpiry: () => number;
  /** Where the on-disk queue lives (mqtt.queue.disk). */
  stateDir: string;
  /** MQTT.js's connect, injectable like its own stores and timers. */
  connect?: typeof mqttConnect;
}

/** Gets the MQTT v5 properties too: commands read credentials and reply topics from them. */
type Handler = (topic: string, payload: Buffer, properties?: IPublishPacket['properties']) => void;

/**
 * The daemon's MQTT connection: availability (`online` on every connect, `offline` as last
 * will, `stopped` on clean exit), retained state republished on every reconnect (a broker
 * restart may have lost it), predictions with a bounded offline queue, and subscriptions.
 * Never blocks startup on the broker.
 */
export class MqttPublisher {
  private client: MqttClient | undefined;
  private topicSet: Topics | undefined;
  private droppedQos0 = 0;
  private sentCount = 0;
  private outbox: Outbox | undefined;
  private delivery: OutboxDelivery | undefined;
  private attempt = 0;
  private readonly retained = new Map<string, string>();
  private readonly handlers: { filter: string; handler: Handler }[] = [];
  private readonly connectListeners: (() => void)[] = [];

  constructor(private readonly deps: MqttPublisherDeps) {}

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  get topics(): Topics {
    this.topicSet ??= createTopics(this.deps.config.base_topic, this.deps.deviceId);
    return this.topicSet;
  }

  /** Predictions dropped: the queue's oldest beyond its bound, and QoS 0 ones while offline. */
  get droppedOffline(): number {
    const d = this.outbox?.stats().dropped;
    return this.droppedQos0 + (d ? d.prediction + d.event : 0);
  }

  /** Messages the broker acknowledged (QoS 1/2) or that were written (QoS 0). */
  get sent(): number {
    return this.sentCount + (this.outbox?.stats().sent ?? 0);
  }

  /** Waiting in the outbox for the broker (in flight included). */
  get queued(): number {
    return this.outbox?.stats().queued ?? 0;
  }

  async start(): Promise<void> {
    const { config, deviceId, url, logger, clock } = this.deps;
    const q = config.queue;
    const outbox = new Outbox({
      logger,
      clock,
      config: {
        max_messages: q.max_messages,
        ...(q.disk ? { disk: { path: join(this.deps.stateDir, 'mqtt-queue.log'), max_bytes: q.disk_max_bytes, fsync: q.fsync } } : {}),
      },
    });
    await outbox.start();
    this.outbox = outbox;
    const delivery = new OutboxDelivery({ logger, clock, outbox, drainDelayMs: q.drain_delay_ms, predictionExpiry: this.deps.predictionExpiry });
    this.delivery = delivery;
    const options = {
      ...clientOptions(config, deviceId, this.deps.embedded),
      reconnectPeriod: 1_000,
      will: { topic: this.topics.status, payload: Buffer.from(JSON.stringify(this.status('offline', false))), qos: 1 as const, retain: true },
    };
    const client = (this.deps.connect ?? mqttConnect)(url, options);
    this.client = client;
    client.on('connect', () => {
      this.attempt = 0;
      client.options.reconnectPeriod = 1_000;
      logger.info({ url: redactUrl(url), queued: outbox.stats().queued, dropped: this.droppedOffline }, 'MQTT connected');
      this.republish();
      delivery.start(client);
      for (const listener of this.connectListeners) this.safely(listener);
    });
    // MQTT.js reads reconnectPeriod each time it schedules a reconnect: back off with jitter.
    client.on('close', () => {
      delivery.stop();
      client.options.reconnectPeriod = reconnectDelay(this.attempt++, config.reconnect_max_ms);
    });
    client.on('offline', () => logger.warn({ url: redactUrl(url) }, 'MQTT offline; messages are queued until it reconnects'));
    let lastError = '';
    client.on('error', (err) => {
      // Retries repeat the same failure every few seconds: full detail once, then only changes.
      const described = describeMqttError(err);
      if (described.key === lastError) return logger.debug(described.fields, 'MQTT error (again)');
      lastError = described.key;
      logger.error(described.fields, 'MQTT error');
    });
    client.on('message', (topic, payload, packet) => {
      for (const h of this.handlers) if (topicMatches(h.filter, topic)) this.safely(() => h.handler(topic, payload, packet.properties));
    });
    await Promise.resolve();
  }

  /** Availability and every retained state again (Home Assistant's birth message asks for it). */
  republish(): void {
    if (!this.connected) return;
    this.publishStatus('online');
    for (const [topic, payload] of this.retained) this.send(topic, payload, { qos: 1, retain: true });
  }

  /** Runs `listener` after every (re)connect, after availability and retained state went out. */
  onConnect(listener: () => void): void {
    this.connectListeners.push(listener);
  }

  /** Subscribes (MQTT.js resubscribes after reconnects); messages go to `handler`, which must not throw. */
  subscribe(filter: string, handler: Handler, qos: 0 | 1 = 1): void {
    this.handlers.push({ filter, handler });
    this.client?.subscribe(filter, { qos }, (err) => {
      if (!err) return;
      const code = subackCode(err);
      // A SUBSCRIBE queued while disconnected fails with "Connection closed" and is resent on
      // connect by MQTT.js; only a broker's refusal (reason code >= 0x80) is worth an alarm.
      if (typeof code === 'number' && code >= 0x80) {
        this.deps.logger.error({ filter, code, err: err.message }, 'MQTT subscribe refused by the broker (ACL?)');
      } else {
        this.deps.logger.debug({ filter, err: err.message }, 'MQTT subscribe deferred');
      }
    });
  }

  unsubscribe(filter: string): void {
    const i = this.handlers.findIndex((h) => h.filter === filter);
    if (i >= 0) this.handlers.splice(i, 1);
    this.client?.unsubscribe(filter);
  }

  publishPrediction(payload: PredictionPayload): void {
    const topic = this.topics.prediction(payload.camera);
    const qos = this.deps.config.qos;
    if (qos === 0) {
      // QoS 0 promises nothing: published while connected, counted as dropped otherwise.
      if (this.connected) this.send(topic, JSON.stringify(payload), { qos: 0 });
      else this.droppedQos0++;
      return;
    }
    this.outbox?.enqueue({ topic, payload: JSON.stringify(payload), qos, retain: false, kind: 'prediction' });
  }

  /** Label switches are events: queued like predictions, kept when predictions are dropped. */
  publishLabelEvent(e: LabelEvent): void {
    const payload: LabelEventPayload = { v: 1, camera: e.camera, label: e.label, state: e.state, score: e.score, ts: new Date(this.deps.clock.now()).toISOString() };
    const topic = this.topics.label(e.camera, e.slug);
    const text = JSON.stringify(payload);
    this.retained.set(topic, text);
    this.outbox?.enqueue({ topic, payload: text, qos: 1, retain: true, kind: 'event' });
  }

  publishCameraStatus(payload: CameraStatusPayload): void {
    this.retain(this.topics.cameraStatus(payload.camera), JSON.stringify(payload));
  }

  /** Retained state: only the latest matters, so it is not queued offline but republished on connect. */
  retain(topic: string, payload: string): void {
    this.retained.set(topic, payload);
    if (this.connected) this.send(topic, payload, { qos: 1, retain: true });
  }

  /** Removes a retained message (an empty retained payload deletes it on the broker). */
  clearRetained(topic: string): void {
    this.retained.delete(topic);
    if (this.connected) this.send(topic, '', { qos: 1, retain: true });
  }

  /**
   * A camera removed by a reload: its retained status and the label states of `slugs` are
   * deleted, so subscribers (and Home Assistant's availability) do not see it as merely offline.
   */
  forgetCamera(camera: string, slugs: readonly string[]): void {
    this.clearRetained(this.topics.cameraStatus(camera));
    for (const slug of slugs) this.clearRetained(this.topics.label(camera, slug));
  }

  /** A plain message (responses, stats, snapshots); dropped when offline. */
  publish(topic: string, payload: string | Buffer, opts: IClientPublishOptions = { qos: 0 }): void {
    if (this.connected) this.send(topic, payload, opts);
  }

  /** Sends what is queued (briefly), publishes `stopped`, disconnects, closes the queue. */
  async stop(timeoutMs = 1_500): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    if (client.connected && this.outbox) await withTimeout(this.drained(this.outbox), timeoutMs).catch(() => undefined);
    this.delivery?.stop();
    if (client.connected) {
      const sent = client.publishAsync(this.topics.status, JSON.stringify(this.status('stopped')), { qos: 1, retain: true });
      await withTimeout(sent, timeoutMs).catch((err: unknown) =>
        this.deps.logger.warn({ err: (err as Error).message }, 'could not publish stopped status'),
      );
    }
    // Drain queued messages if connected; force-close if the broker does not answer.
    await withTimeout(client.endAsync(false), timeoutMs).catch(() => client.endAsync(true));
    await this.outbox?.stop();
  }

  private async drained(outbox: Outbox): Promise<void> {
    while (outbox.stats().queued > 0 && this.client === undefined) await this.deps.clock.sleep(20);
  }

  private send(topic: string, payload: string | Buffer, opts: IClientPublishOptions): void {
    const v5 = this.client?.options.protocolVersion === 5;
    const withType = v5 && typeof payload === 'string' && payload.length > 0
      ? { ...opts, properties: { contentType: 'application/json', ...opts.properties } }
      : opts;
    this.client?.publish(topic, payload, withType, (err) => {
      if (!err) {
        this.sentCount++;
        return;
      }
      const code = (err as { code?: unknown }).code;
      const why = code === 0x87 ? 'MQTT publish not authorized (broker ACL?)' : 'MQTT publish failed';
      this.deps.logger.warn({ topic, code, err: err.message }, why);
    });
  }

  private publishStatus(state: AvailabilityState): void {
    this.send(this.topics.status, JSON.stringify(this.status(state)), { qos: 1, retain: true });
  }

  private status(state: AvailabilityState, withDetails = true): StatusPayload {
    const base: StatusPayload = { v: 1, state, device: this.deps.deviceId, version: this.deps.version };
    if (!withDetails) return base;
    return { ...base, ts: new Date(this.deps.clock.now()).toISOString(), ...this.deps.statusDetails() };
  }

  private safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.deps.logger.error({ err: (err as Error).message }, 'MQTT handler failed');
    }
  }
}

/**
 * The broker's SUBACK reason code in a failed subscribe. MQTT.js (5.x) passes it wrapped in an
 * ErrorWithSubackPacket, which keeps the packet but not the `code` its inner error had.
 */
function subackCode(err: Error): number | undefined {
  const e = err as { code?: unknown; packet?: { granted?: unknown } };
  if (typeof e.code === 'number') return e.code;
  const granted = Array.isArray(e.packet?.granted) ? (e.packet.granted as unknown[]) : [];
  return granted.find((g): g is number => typeof g === 'number' && g >= 0x80);
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const HINTS: Record<string, string> = {
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: 'the broker does not trust the client certificate: check mqtt.tls.cert and mqtt.tls.key',
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: 'the broker requires a client certificate: set mqtt.tls.cert and mqtt.tls.key',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the broker certificate is not signed by mqtt.tls.ca',
  SELF_SIGNED_CERT_IN_CHAIN: 'the broker certificate is not signed by mqtt.tls.ca',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the broker certificate is self-signed: put it (or its CA) in mqtt.tls.ca',
  ERR_TLS_CERT_ALTNAME_INVALID: 'the broker certificate does not match the host name in mqtt.url',
  ECONNREFUSED: 'nothing listens at mqtt.url (broker down?)',
  ENOTFOUND: 'the broker host name does not resolve',
};

/** An operator-readable MQTT error: the short reason (not OpenSSL's raw string) and a hint. */
function describeMqttError(err: Error): { key: string; fields: Record<string, unknown> } {
  const e = err as Error & { code?: unknown; reason?: unknown };
  const code = e.code;
  const reason = typeof e.reason === 'string' ? e.reason : err.message.split('\n')[0];
  const hint = typeof code === 'string' ? HINTS[code] : code === 5 || code === 135 ? 'not authorized: check mqtt.username and the password' : undefined;
  return { key: `${String(code)}:${reason}`, fields: { code, err: reason, ...(hint ? { hint } : {}) } };
}
