import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { percentile } from './stats.js';

/**
 * Event-loop delay: how late the main thread's timers fire. It is what MQTT keepalives, camera
 * I/O and commands feel; inference on the main thread shows up here as one run per sample.
 */
export class LoopDelayProbe {
  // 5 ms resolution: fine enough to see a blocked loop, coarse enough not to load a small CPU.
  private readonly histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: 5 });

  start(): void {
    this.histogram.reset();
    this.histogram.enable();
  }

  /** Stops and returns the p99 delay in milliseconds. */
  stopP99(): number {
    this.histogram.disable();
    return this.histogram.count > 0 ? this.histogram.percentile(99) / 1e6 : 0;
  }
}

/** Resident set size, sampled on a timer: peak, and steady = median over the last half. */
export class RssSampler {
  private readonly samples: number[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly intervalMs = 50) {}

  start(): void {
    this.samples.length = 0;
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    // A sampler must never keep the process alive.
    this.timer.unref();
  }

  stop(): { peak: number; steady: number } {
    clearInterval(this.timer);
    this.sample();
    const mb = (b: number): number => b / (1024 * 1024);
    const lastHalf = this.samples.slice(Math.floor(this.samples.length / 2));
    return { peak: mb(Math.max(...this.samples)), steady: mb(percentile(lastHalf, 50)) };
  }

  private sample(): void {
    this.samples.push(process.memoryUsage.rss());
  }
}
