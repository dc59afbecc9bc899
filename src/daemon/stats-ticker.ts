import type { Logger } from '../core/logger.js';
import type { Clock } from '../core/clock.js';
import { buildStats, createCpuMeter, type StatsPayload, type StatsSources } from './stats.js';

export interface StatsTickerDeps {
  logger: Logger;
  clock: Clock;
  intervalMs: number;
  deviceId: string;
  collect: () => Omit<StatsSources, 'deviceId' | 'now' | 'startedAt'>;
  publish: (payload: StatsPayload) => void;
}

/** Every interval: the B/D/stats message and a "stats" log line with the same figures. */
export class StatsTicker {
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;

  constructor(private readonly deps: StatsTickerDeps) {}

  async start(): Promise<void> {
    this.loop = this.run();
    await Promise.resolve();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { clock, intervalMs, logger } = this.deps;
    const startedAt = clock.now();
    const cpu = createCpuMeter();
    while (!this.abort.signal.aborted) {
      await clock.sleep(intervalMs, this.abort.signal);
      if (this.abort.signal.aborted) break;
      try {
        const now = clock.now();
        const payload = buildStats({ ...this.deps.collect(), deviceId: this.deps.deviceId, now, startedAt }, cpu(now));
        this.deps.publish(payload);
        logger.info({ cameras: payload.cameras, inference_ms: payload.inference_ms, mqtt: payload.mqtt, rss_mb: payload.memory.rss_mb }, 'stats');
      } catch (err) {
        logger.error({ err: (err as Error).message }, 'stats failed');
      }
    }
  }
}
