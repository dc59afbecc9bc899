import type { LatencyWindow } from '../../core/latency-window.js';
import type { MqttPublisher } from '../../mqtt/mqtt-publisher.js';
import type { ModelManager } from '../model-manager.js';
import type { Cameras } from '../cameras.js';
import type { Pipeline } from '../pipeline.js';
import { StatsSchedule } from '../stats-schedule.js';
import { StatsTicker } from '../stats-ticker.js';
import { childLogger, modelRef, type PartContext } from './context.js';

export interface StatsPartDeps extends Pick<PartContext, 'logger' | 'clock' | 'config'> {
  cameras: Pick<Cameras, 'health'>;
  pipeline: Pick<Pipeline, 'counters'>;
  /** Filled from frameClassified by the frame path. */
  inference: LatencyWindow;
  mqtt: Pick<MqttPublisher, 'connected' | 'queued' | 'sent' | 'droppedOffline' | 'publish' | 'topics'>;
  models: Pick<ModelManager, 'model'>;
}

/** B/D/stats every stats_interval: a schedule rather than one ticker, as a reload may change the interval. */
export function statsPart(deps: StatsPartDeps) {
  const { config, cameras, pipeline, inference, mqtt, models } = deps;
  const stats = new StatsSchedule({
    intervalSeconds: config.stats_interval,
    ticker: (intervalMs) => new StatsTicker({
      logger: childLogger(deps, 'stats'),
      clock: deps.clock,
      intervalMs,
      deviceId: config.device_id,
      collect: () => ({
        health: cameras.health(),
        counters: pipeline.counters(),
        inference: { p50: inference.percentile(50), p95: inference.percentile(95), samples: inference.count },
        mqtt: { connected: mqtt.connected, queued: mqtt.queued, sent: mqtt.sent, dropped: mqtt.droppedOffline },
        model: modelRef(models) ?? null,
      }),
      publish: (payload) => mqtt.publish(mqtt.topics.stats, JSON.stringify(payload), { qos: 0 }),
    }),
  });
  return { name: 'stats', start: () => stats.start(), stop: () => stats.stop(), stats };
}
