import { connect as mqttConnect, type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from '../ops/logger.js';
import type { Clock } from '../ops/clock.js';
import type { MqttConfig } from '../config/schema.js';
import { createTopics, type Topics } from './topics.js';
import type { AvailabilityState, CameraStatusPayload, PredictionPayload, StatusPayload } from './payloads.js';

export interface MqttPublisherDeps {
  logger: Logger;
  clock: Clock;
  config: MqttConfig;
  deviceId: string;
  /** The broker URL to use (the embedded broker's when config.url is "embedded"). */
  url: string;
  /** The daemon's version, in every status message (including the last will). */
  version: string;
  /** Current model/provider/cameras, read on every (re)connect. */
  statusDetails: () => Omit<StatusPayload, 'v' | 'state' | 'device' | 'version' | 'ts'>;
  /** MQTT.js's connect, injectable like its own stores and timers. */
  connect?: typeof mqttConnect;
}

/**
 * The daemon's MQTT side: retained availability (`online` on every connect, `offline` as last
 * will, `stopped` on clean exit) and predictions. Never blocks startup on the broker: MQTT.js
 * reconnects by itself and queues messages while offline.
 */
export class MqttPublisher {
  private client: MqttClient | undefined;
  private topics: Topics | undefined;
  private queuedOffline = 0;
  /** Latest retained payload per topic: republished on every (re)connect, since a broker restart may have lost it. */
  private readonly retained = new Map<string, string>();
  private dropped = 0;

  constructor(private readonly deps: MqttPublisherDeps) {}

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  async start(): Promise<void> {
    const { config, deviceId, url, logger } = this.deps;
    const topics = createTopics(config.base_topic, deviceId);
    this.topics = topics;
    const options: IClientOptions = {
      clientId: config.client_id ?? `edge-classifier-${deviceId}`,
      keepalive: config.keepalive,
      reconnectPeriod: 2_000,
      connectTimeout: 10_000,
      clean: true,
      will: { topic: topics.status, payload: Buffer.from(JSON.stringify(this.status('offline', false))), qos: 1, retain: true },
      ...(config.username !== undefined ? { username: config.username } : {}),
      ...(config.password !== undefined ? { password: config.password } : {}),
    };
    const client = (this.deps.connect ?? mqttConnect)(url, options);
    this.client = client;
    client.on('connect', () => {
      logger.info({ url: redact(url), droppedWhileOffline: this.dropped }, 'MQTT connected');
      this.queuedOffline = 0;
      this.publishStatus('online');
      for (const [topic, payload] of this.retained) this.sendRetained(topic, payload);
    });
    client.on('reconnect', () => logger.debug('MQTT reconnecting'));
    client.on('offline', () => logger.warn({ url: redact(url) }, 'MQTT offline; messages are queued until it reconnects'));
    client.on('error', (err) => logger.error({ err: err.message }, 'MQTT error'));
    await Promise.resolve();
  }

  /** Predictions dropped because the broker was unreachable and the offline queue was full. */
  get droppedOffline(): number {
    return this.dropped;
  }

  publishPrediction(payload: PredictionPayload): void {
    if (!this.client || !this.topics) return;
    if (!this.client.connected) {
      // MQTT.js queues without bound while offline; a day-long outage at 10 fps must not
      // exhaust a Pi's memory. Beyond the bound, new predictions are dropped and counted.
      if (this.queuedOffline >= this.deps.config.max_queued) {
        if (this.dropped++ === 0) this.deps.logger.warn({ max_queued: this.deps.config.max_queued }, 'MQTT offline queue full; dropping predictions');
        return;
      }
      this.queuedOffline++;
    }
    this.client.publish(this.topics.prediction(payload.camera), JSON.stringify(payload), { qos: this.deps.config.qos }, (err) => {
      if (err) this.deps.logger.warn({ camera: payload.camera, seq: payload.seq, err: err.message }, 'prediction not published');
    });
  }

  /** Retained camera state (B/D/CAMERA/status); only the latest matters, so it is not queued offline. */
  publishCameraStatus(payload: CameraStatusPayload): void {
    if (!this.topics) return;
    const topic = this.topics.cameraStatus(payload.camera);
    const text = JSON.stringify(payload);
    this.retained.set(topic, text);
    if (this.client?.connected) this.sendRetained(topic, text);
  }

  private sendRetained(topic: string, payload: string): void {
    this.client?.publish(topic, payload, { qos: 1, retain: true }, (err) => {
      if (err) this.deps.logger.warn({ topic, err: err.message }, 'retained state not published');
    });
  }

  /** Publishes `stopped` (waiting up to `timeoutMs` for the broker), then disconnects. */
  async stop(timeoutMs = 1_500): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (!client || !this.topics) return;
    if (client.connected) {
      const sent = client.publishAsync(this.topics.status, JSON.stringify(this.status('stopped')), { qos: 1, retain: true });
      await withTimeout(sent, timeoutMs).catch((err: unknown) =>
        this.deps.logger.warn({ err: (err as Error).message }, 'could not publish stopped status'),
      );
    }
    // Drain queued predictions if connected; force-close if the broker does not answer.
    await withTimeout(client.endAsync(false), timeoutMs).catch(() => client.endAsync(true));
  }

  private publishStatus(state: AvailabilityState): void {
    if (!this.client || !this.topics) return;
    this.client.publish(this.topics.status, JSON.stringify(this.status(state)), { qos: 1, retain: true }, (err) => {
      if (err) this.deps.logger.warn({ err: err.message }, 'status not published');
    });
  }

  private status(state: AvailabilityState, withDetails = true): StatusPayload {
    const base: StatusPayload = { v: 1, state, device: this.deps.deviceId, version: this.deps.version };
    if (!withDetails) return base;
    return { ...base, ts: new Date(this.deps.clock.now()).toISOString(), ...this.deps.statusDetails() };
  }
}

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
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
