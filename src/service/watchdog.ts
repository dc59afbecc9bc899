import type { Logger } from '../core/logger.js';
import type { Clock } from '../core/clock.js';
import type { CameraHealthSnapshot } from '../camera/camera-health.js';
import type { CameraCounters } from '../daemon/frame-slots.js';
import type { SdNotifier } from './sd-notify.js';
import { judgeInference, judgeProgress, readyReason, type PipelineSample } from './progress.js';
import { statusLine, type StatusInput } from './status-line.js';

export interface ServiceWatchdogDeps {
  logger: Logger;
  clock: Clock;
  notifier: Pick<SdNotifier, 'enabled' | 'watchdogUsec' | 'notify'>;
  /** Read-only views of the pipeline (see Pipeline.counters / Pipeline.inFlightSince). */
  pipeline: {
    counters(): Record<string, CameraCounters>;
    inFlightSince(): { decode: number | undefined; inference: number | undefined };
    /** The last inference error's message, for the `failing` verdict. */
    lastInferenceError?(): string | undefined;
  };
  cameras: () => Record<string, CameraHealthSnapshot>;
  model: () => StatusInput['model'];
  mqttConnected: () => boolean;
  /** STATUS= refresh period (sent only when the text changed); default 5 s. */
  statusIntervalMs?: number;
  /** How often readiness is checked until READY=1 is sent; default 200 ms. */
  readyPollMs?: number;
  /**
   * Progress check period without a systemd watchdog (for /healthz); default 10 s. With one,
   * the check runs at WATCHDOG_USEC/2.
   */
  progressIntervalMs?: number;
}

/**
 * The service's side of systemd's Type=notify contract, fed by what the pipeline actually does:
 * READY=1 once the first frame is classified (or the cameras are all waiting), STATUS= lines,
 * WATCHDOG=1 every WATCHDOG_USEC/2 only when the pipeline made progress in that interval (see
 * judgeProgress), and nothing at all when systemd did not ask (no NOTIFY_SOCKET).
 * Started after the pipeline and cameras; STOPPING=1 is the daemon's (Daemon.stop).
 */
export class ServiceWatchdog {
  private readonly abort = new AbortController();
  private loops: Promise<void>[] = [];
  private ready = false;
  private stalledWhy: string | undefined;
  private failingWhy: string | undefined;
  private lastStatus: string | undefined;
  /** Where the current fps measurement began. */
  private rateFrom: { at: number; classified: number } | undefined;

  constructor(private readonly deps: ServiceWatchdogDeps) {}

  /** Why the pipeline is not progressing (a wedged worker, ...); undefined while it is. */
  get stalled(): string | undefined {
    return this.stalledWhy;
  }

  /**
   * Why the service is failing though not stuck (no reason to withhold WATCHDOG=1: a restart
   * would meet the same model or the same camera): in the last check interval with inferences,
   * every one failed (a model that outputs NaN/Infinity, or throws), cleared by the next
   * classified frame; or a camera makes no progress (its source reported a stall, see
   * CameraHealthSnapshot.stalledSince), read live, cleared by that camera's next frame.
   */
  get failing(): string | undefined {
    return this.failingWhy ?? this.stalledCameras();
  }

  private stalledCameras(): string | undefined {
    const stalled = Object.entries(this.deps.cameras()).filter(([, h]) => h.stalledSince !== undefined);
    if (stalled.length === 0) return undefined;
    return stalled.map(([id, h]) => `camera ${id} makes no progress${h.lastError ? `: ${h.lastError}` : ''}`).join('; ');
  }

  async start(): Promise<void> {
    const { notifier } = this.deps;
    const first = this.sample();
    this.rateFrom = { at: first.at, classified: first.classified };
    if (notifier.enabled) {
      this.loops = [this.every(this.deps.readyPollMs ?? 200, () => this.checkReady()), this.every(this.deps.statusIntervalMs ?? 5_000, () => this.refreshStatus())];
    }
    // The progress verdict also feeds /healthz, so it is judged without systemd too (Docker,
    // a Prometheus blackbox probe): only the WATCHDOG=1 pings need systemd.
    const usec = notifier.enabled ? notifier.watchdogUsec : undefined;
    {
      // systemd's advice: ping at half the timeout, so one late timer does not kill the service.
      const intervalMs = usec !== undefined ? Math.max(1, usec / 2000) : (this.deps.progressIntervalMs ?? 10_000);
      let prev = first;
      this.loops.push(
        this.every(
          intervalMs,
          () => {
            const now = this.sample();
            this.watchdogCheck(prev, now);
            prev = now;
          },
          { delayFirst: true },
        ),
      );
    }
    await Promise.resolve();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await Promise.all(this.loops);
    this.loops = [];
  }

  /** Runs `tick` every `ms` until stopped; a throwing tick is logged, never propagated. */
  private async every(ms: number, tick: () => boolean | void, opts: { delayFirst?: boolean } = {}): Promise<void> {
    const { clock, logger } = this.deps;
    const signal = this.abort.signal;
    if (opts.delayFirst) await clock.sleep(ms, signal);
    while (!signal.aborted) {
      try {
        if (tick() === true) return;
      } catch (err) {
        logger.error({ err: (err as Error).message }, 'watchdog check failed');
      }
      await clock.sleep(ms, signal);
    }
  }

  /** Returns true once READY=1 is sent (ends its loop). */
  private checkReady(): boolean {
    const sample = this.sample();
    const cameras = this.deps.cameras();
    const reason = readyReason(
      sample,
      Object.values(cameras).map((c) => c.state),
    );
    if (!reason) return false;
    this.ready = true;
    // Ready means nothing is stuck (a frame got through, or nothing is in the pipeline).
    if (this.stalledWhy !== undefined) {
      this.deps.logger.info({ was: this.stalledWhy }, 'pipeline progressing again');
      this.stalledWhy = undefined;
    }
    const status = this.status(sample);
    this.deps.notifier.notify({ READY: '1', STATUS: status });
    this.lastStatus = status;
    this.deps.logger.info({ reason, status }, 'READY=1 sent to systemd');
    return true;
  }

  private watchdogCheck(prev: PipelineSample, now: PipelineSample): void {
    this.inferenceCheck(prev, now);
    const { logger, notifier } = this.deps;
    const verdict = judgeProgress(prev, now);
    if (verdict.progress) {
      // systemd arms the watchdog when start-up completes (READY=1); a ping before that would
      // arm it early, while TimeoutStartSec already covers the start.
      if (this.ready && notifier.enabled && notifier.watchdogUsec !== undefined) notifier.notify({ WATCHDOG: '1' });
      if (this.stalledWhy !== undefined) {
        logger.info({ was: this.stalledWhy }, 'pipeline progressing again; watchdog pings resumed');
        this.stalledWhy = undefined;
        this.refreshStatus();
      }
      return;
    }
    const first = this.stalledWhy === undefined;
    this.stalledWhy = verdict.why;
    if (first) {
      const systemd = notifier.enabled && notifier.watchdogUsec !== undefined;
      logger.warn(
        { why: verdict.why, watchdogUsec: systemd ? notifier.watchdogUsec : null },
        systemd
          ? 'pipeline not progressing: WATCHDOG=1 withheld; systemd restarts the service when WatchdogSec passes without one'
          : 'pipeline not progressing: /healthz reports 503 until it does',
      );
      this.refreshStatus();
    }
  }

  /** The `failing` verdict: set when an interval's inferences all failed, cleared by a classified frame. */
  private inferenceCheck(prev: PipelineSample, now: PipelineSample): void {
    const failing = judgeInference(prev, now);
    if (failing !== undefined) {
      const last = this.deps.pipeline.lastInferenceError?.();
      const first = this.failingWhy === undefined;
      this.failingWhy = last ? `${failing}: ${last}` : failing;
      if (first) {
        this.deps.logger.error({ why: this.failingWhy }, 'every inference is failing: /healthz reports 503 until a frame is classified again');
        this.refreshStatus();
      }
    } else if (this.failingWhy !== undefined && now.classified > prev.classified) {
      this.deps.logger.info({ was: this.failingWhy }, 'inference succeeding again');
      this.failingWhy = undefined;
      this.refreshStatus();
    }
  }

  /** Sends STATUS= when the text changed (not before READY=1, which carries the first one). */
  private refreshStatus(): void {
    if (!this.ready) return;
    const sample = this.sample();
    const status = this.status(sample);
    this.rateFrom = { at: sample.at, classified: sample.classified };
    if (status === this.lastStatus) return;
    this.lastStatus = status;
    this.deps.notifier.notify({ STATUS: status });
  }

  private status(now: PipelineSample): string {
    const from = this.rateFrom ?? now;
    const elapsed = now.at - from.at;
    const fps = elapsed > 0 ? ((now.classified - from.classified) * 1000) / elapsed : 0;
    return statusLine({
      fps: Math.round(fps * 10) / 10,
      model: this.deps.model(),
      mqttConnected: this.deps.mqttConnected(),
      cameras: this.deps.cameras(),
      stalled: this.stalledWhy,
      failing: this.failing,
    });
  }

  private sample(): PipelineSample {
    let captured = 0;
    let classified = 0;
    let discarded = 0;
    let inferenceErrors = 0;
    for (const c of Object.values(this.deps.pipeline.counters())) {
      captured += c.captured;
      classified += c.classified;
      discarded += c.dropped + c.decodeErrors + c.inferenceErrors;
      inferenceErrors += c.inferenceErrors;
    }
    const since = this.deps.pipeline.inFlightSince();
    return { at: this.deps.clock.monotonic(), captured, classified, discarded, inferenceErrors, decodingSince: since.decode, inferringSince: since.inference };
  }
}
