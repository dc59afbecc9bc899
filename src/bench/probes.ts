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

  /**
   * peak; steady = median of the last half; growth = median of the last tenth minus median of
   * the first tenth (a leak shows as growth; one-off allocations early in the window do too,
   * which is why long runs are the ones to read it from).
   */
  stop(): { peak: number; steady: number; growth: number } {
    clearInterval(this.timer);
    this.sample();
    const mb = (b: number): number => b / (1024 * 1024);
    const n = this.samples.length;
    const lastHalf = this.samples.slice(Math.floor(n / 2));
    const tenth = Math.max(1, Math.floor(n / 10));
    const growth = percentile(this.samples.slice(n - tenth), 50) - percentile(this.samples.slice(0, tenth), 50);
    return { peak: mb(Math.max(...this.samples)), steady: mb(percentile(lastHalf, 50)), growth: mb(growth) };
  }

  private sample(): void {
    this.samples.push(process.memoryUsage.rss());
  }
}

/**
 * CPU time of the whole process (main thread, inference worker, onnxruntime's threads, sharp's
 * libuv threads) over a window. Less sensitive to other processes than wall time: on a shared
 * machine it shows what a setting costs even when the fps figures are noise.
 */
export class CpuMeter {
  private startedAt: NodeJS.CpuUsage | undefined;

  start(): void {
    this.startedAt = process.cpuUsage();
  }

  /** Milliseconds of CPU since start(). */
  stopMs(): number {
    const d = process.cpuUsage(this.startedAt);
    return (d.user + d.system) / 1000;
  }
}
