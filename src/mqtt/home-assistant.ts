import type { Logger } from '../core/logger.js';
import type { Clock } from '../core/clock.js';
import type { MqttPublisher } from './mqtt-publisher.js';
import { discoveryMessages, nodeId, type DiscoveryContext } from './ha-discovery.js';

export interface HomeAssistantDeps {
  logger: Logger;
  clock: Clock;
  config: { discovery_prefix: string; birth_topic: string };
  mqtt: Pick<MqttPublisher, 'connected' | 'onConnect' | 'subscribe' | 'unsubscribe' | 'retain' | 'clearRetained' | 'republish'>;
  context: () => Omit<DiscoveryContext, 'prefix'>;
  /** How long to collect this device's retained discovery configs before pruning stale ones. */
  collectMs?: number;
}

/**
 * Announces the cameras to Home Assistant on every connect and removes entities of cameras
 * (or watch rules) no longer configured: it reads back this device's retained discovery
 * configs from the broker and sends an empty retained config for each stale one. Answers
 * Home Assistant's birth message by republishing availability and state.
 */
export class HomeAssistant {
  private syncing: Promise<void> | undefined;
  /** A sync was asked for while one ran (with what may now be an old camera list). */
  private again = false;
  private stopped = false;

  constructor(private readonly deps: HomeAssistantDeps) {}

  async start(): Promise<void> {
    const { mqtt, config, logger } = this.deps;
    mqtt.subscribe(config.birth_topic, (_topic, payload) => {
      if (payload.toString() !== 'online') return;
      logger.info('Home Assistant came online; republishing state');
      mqtt.republish();
      this.sync();
    });
    mqtt.onConnect(() => this.sync());
    // MQTT starts before this part: a connection made meanwhile got no sync from the listener.
    if (mqtt.connected) this.sync();
    await Promise.resolve();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    while (this.syncing) await this.syncing;
  }

  /** Announces again and removes stale entities: the cameras or watch rules changed (reload). */
  resync(): void {
    this.sync();
  }

  private sync(): void {
    if (this.stopped) return;
    if (this.syncing) {
      this.again = true;
      return;
    }
    const run = this.runSync().catch((err: unknown) => this.deps.logger.warn({ err: (err as Error).message }, 'Home Assistant discovery failed'));
    this.syncing = run.finally(() => {
      this.syncing = undefined;
      if (!this.again) return;
      this.again = false;
      this.sync();
    });
  }

  private async runSync(): Promise<void> {
    const { mqtt, config, clock, logger } = this.deps;
    const ctx = { ...this.deps.context(), prefix: config.discovery_prefix };
    const messages = discoveryMessages(ctx);
    const wanted = new Set(messages.map((m) => m.topic));
    const existing = new Set<string>();
    const filter = `${config.discovery_prefix}/+/${nodeId(ctx.deviceId)}/+/config`;
    mqtt.subscribe(filter, (topic, payload) => {
      if (payload.length > 0) existing.add(topic);
    });
    for (const m of messages) mqtt.retain(m.topic, JSON.stringify(m.payload));
    await clock.sleep(this.deps.collectMs ?? 1_500);
    mqtt.unsubscribe(filter);
    const stale = [...existing].filter((t) => !wanted.has(t));
    for (const topic of stale) mqtt.clearRetained(topic);
    // Our own retained configs come back on the subscription; none back means the broker
    // dropped them (an ACL without reason codes in MQTT 3.1.1 says nothing else).
    const visible = messages.filter((m) => existing.has(m.topic)).length;
    if (messages.length > 0 && visible === 0) {
      logger.warn({ prefix: config.discovery_prefix, entities: messages.length }, 'Home Assistant discovery configs not visible on the broker (ACL denies the discovery prefix?)');
      return;
    }
    logger.info({ entities: messages.length, visible, removed: stale.length }, 'Home Assistant discovery published');
  }
}
