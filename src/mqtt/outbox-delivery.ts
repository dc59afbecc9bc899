import type { MqttClient } from 'mqtt';
import type { Logger } from '../core/logger.js';
import type { Clock } from '../core/clock.js';
import type { Outbox, OutboxMessage } from './outbox/index.js';

export interface OutboxDeliveryDeps {
  logger: Logger;
  clock: Clock;
  outbox: Outbox;
  drainDelayMs: number;
  /** MQTT v5 expiry of predictions, seconds (0: none), counted from the capture time. */
  predictionExpiry: () => number;
}

const MAX_FAILURES_PER_MESSAGE = 5;

/**
 * Drains the outbox into the broker while connected: in order, each message removed only once
 * the broker acknowledged it. Started on every connect, aborted on every disconnect; a message
 * the broker keeps refusing (an MQTT 5 reason code) is discarded after a few tries so it
 * cannot block everything behind it.
 */
export class OutboxDelivery {
  private abort: AbortController | undefined;
  private failures = { id: -1, count: 0 };
  private expired = 0;

  constructor(private readonly deps: OutboxDeliveryDeps) {}

  get expiredCount(): number {
    return this.expired;
  }

  start(client: MqttClient): void {
    this.stop();
    const abort = new AbortController();
    this.abort = abort;
    void this.run(client, abort.signal).catch((err: unknown) =>
      this.deps.logger.error({ err: (err as Error).message }, 'outbox delivery failed'),
    );
  }

  stop(): void {
    this.abort?.abort();
    this.abort = undefined;
  }

  private async run(client: MqttClient, signal: AbortSignal): Promise<void> {
    const { outbox, clock, logger } = this.deps;
    if (outbox.stats().queued > 0) await clock.sleep(this.deps.drainDelayMs, signal);
    let backoff = 500;
    while (!signal.aborted && client.connected) {
      const result = await outbox.deliver((m) => this.send(client, m), { signal });
      if (result.stopped !== 'failed') return;
      if (!client.connected || signal.aborted) return;
      // Connected, yet the broker refused this message.
      this.failures = this.failures.id === result.id ? { id: result.id, count: this.failures.count + 1 } : { id: result.id, count: 1 };
      if (this.failures.count >= MAX_FAILURES_PER_MESSAGE) {
        outbox.discard(result.id);
        logger.error({ id: result.id, err: String((result.error as Error)?.message ?? result.error) }, 'message refused repeatedly by the broker; discarded');
      }
      await clock.sleep(backoff, signal);
      backoff = Math.min(backoff * 2, 10_000);
    }
  }

  private async send(client: MqttClient, m: OutboxMessage): Promise<void> {
    if (!client.connected) throw new Error('offline');
    const v5 = client.options.protocolVersion === 5;
    const properties: Record<string, unknown> = v5 ? { contentType: 'application/json' } : {};
    const expiry = m.kind === 'prediction' ? this.deps.predictionExpiry() : 0;
    if (expiry > 0) {
      const ts = Date.parse((JSON.parse(m.payload) as { ts?: string }).ts ?? '');
      const left = Number.isNaN(ts) ? expiry : Math.ceil(expiry - (this.deps.clock.now() - ts) / 1000);
      // Past its expiry no subscriber may receive it: acknowledge it to ourselves instead.
      if (left <= 0) {
        this.expired++;
        return;
      }
      if (v5) properties.messageExpiryInterval = left;
    }
    await client.publishAsync(m.topic, m.payload, { qos: m.qos, retain: m.retain, ...(v5 ? { properties } : {}) });
  }
}
