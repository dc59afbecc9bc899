/**
 * Keeps one long-lived capture process (ffmpeg, gst-launch) running for a camera: each run
 * (process-run.ts) ends in a restart after an exponential backoff, reported through the sink
 * as captureError (what happened, with ffmpeg's last stderr lines) then restarting(reason). A
 * camera problem never throws out of here and never stops other cameras.
 *
 * Backoff: backoff_initial_ms doubling per consecutive failure up to backoff_max_ms, plus
 * 0-20% jitter (cameras that fail together do not retry in lockstep). The count starts over
 * once a run has delivered frames for stall_timeout_ms, not at its first frame: a process
 * that dies right after one frame (a camera crashing on open) keeps backing off instead of
 * being respawned every second forever. An exit is always a failure for a live source; a
 * file played once ends the source (sink.end()) instead.
 */
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import type { FrameSink } from '../frame.js';
import type { FrameSplitter, SplitterDeps } from './frame-splitter.js';
import { parentDeathPrefix, type SpawnFn } from './parent-death.js';
import { runProcess, type RunTiming } from './process-run.js';

/** SIGTERM to SIGKILL when stopping or restarting a capture process. */
export const KILL_GRACE_MS = 2_000;

export interface SupervisorTiming extends RunTiming {
  backoffInitialMs: number;
  backoffMaxMs: number;
}

export interface ProcessSupervisorDeps {
  /** The program (ffmpeg, gst-launch-1.0) and its arguments. */
  command: string;
  args: readonly string[];
  /** What is captured, without credentials (rtsp://host/path, /dev/video0): used in messages. */
  description: string;
  /** Removes secrets from text that may hold them (stderr lines, messages). */
  redact: (text: string) => string;
  /** A fresh splitter for each process. */
  createSplitter: (deps: SplitterDeps) => FrameSplitter;
  maxFrameBytes: number;
  /** A complete frame; called synchronously from the stdout handler. */
  onFrame: (data: Buffer) => void;
  /** Exit code 0 means the input is over (a file played once): sink.end() instead of a restart. */
  endOnCleanExit: boolean;
  sink: Pick<FrameSink, 'captureError' | 'restarting' | 'end'>;
  spawn: SpawnFn;
  clock: Clock;
  logger: Logger;
  timing: SupervisorTiming;
  /** [0, 1); jitter of the restart delay. */
  random: () => number;
}

/**
 * The watchdog's timeout: stall_timeout_ms, but at least three frame intervals, so a camera
 * asked for one frame every 20 s is not killed between two frames.
 */
export function effectiveStallTimeout(stallTimeoutMs: number, fps: number): number {
  return Math.max(stallTimeoutMs, Math.ceil(3_000 / fps));
}

/** Restart delay after `failures` consecutive failures: initial doubling to max, plus 0-20%. */
/** The supervision settings of a stream source's config (shared by ffmpeg and gst-launch). */
export function supervisionTiming(config: {
  stall_timeout_ms: number;
  fps: number;
  backoff_initial_ms: number;
  backoff_max_ms: number;
}): SupervisorTiming {
  return {
    stallTimeoutMs: effectiveStallTimeout(config.stall_timeout_ms, config.fps),
    backoffInitialMs: config.backoff_initial_ms,
    backoffMaxMs: config.backoff_max_ms,
    killGraceMs: KILL_GRACE_MS,
  };
}

export function backoffDelay(failures: number, timing: Pick<SupervisorTiming, 'backoffInitialMs' | 'backoffMaxMs'>, random: number): number {
  const base = Math.min(timing.backoffInitialMs * 2 ** Math.max(0, failures - 1), timing.backoffMaxMs);
  return Math.round(base * (1 + 0.2 * random));
}

export class ProcessSupervisor {
  private controller: AbortController | undefined;
  private starting: Promise<void> | undefined;
  private loop: Promise<void> | undefined;
  private prefix: readonly string[] = [];
  private currentPid: number | undefined;

  constructor(private readonly deps: ProcessSupervisorDeps) {}

  /** Pid of the running child (tests and diagnostics); undefined between runs. */
  get pid(): number | undefined {
    return this.currentPid;
  }

  /** Resolves once the first process has been spawned; restarts go on in the background. */
  start(): Promise<void> {
    this.starting ??= this.begin();
    return this.starting;
  }

  /** Kills the process group (SIGTERM, then SIGKILL) and resolves once the child has exited. */
  async stop(): Promise<void> {
    this.controller?.abort();
    await this.starting;
    await this.loop;
    this.starting = undefined;
    this.loop = undefined;
    this.controller = undefined;
  }

  private async begin(): Promise<void> {
    const { spawn, logger, command } = this.deps;
    const controller = new AbortController();
    this.controller = controller;
    this.prefix = await parentDeathPrefix(spawn);
    if (controller.signal.aborted) return; // stop() came first
    if (this.prefix.length === 0) {
      logger.warn({ command }, 'setpriv --pdeathsig is not available: if the daemon is SIGKILLed, a stalled capture process may outlive it');
    }
    this.loop = this.run(controller.signal).catch((err: unknown) => this.crashed(err));
  }

  private async run(signal: AbortSignal): Promise<void> {
    const { sink, clock, logger, timing, random, command, args } = this.deps;
    let failures = 0;
    while (!signal.aborted) {
      const outcome = await runProcess({
        ...this.deps,
        argv: [...this.prefix, command, ...args],
        signal,
        restarted: failures > 0,
        onPid: (pid) => (this.currentPid = pid),
      });
      if (outcome.healthy) failures = 0;
      if (outcome.reason === 'stopped' || signal.aborted) return;
      if (outcome.reason === 'ended') {
        logger.info({ source: this.deps.description }, outcome.message);
        this.report(() => sink.end());
        return;
      }
      failures += 1;
      const delay = backoffDelay(failures, timing, random());
      const err = new Error(`${outcome.message} (restart in ${(delay / 1000).toFixed(1)} s)`);
      logger.warn({ reason: outcome.reason, failures, delayMs: delay, err: err.message }, 'capture process failed; restarting');
      const reason = outcome.reason;
      this.report(() => sink.captureError(err));
      this.report(() => sink.restarting(reason, err));
      await clock.sleep(delay, signal);
    }
  }

  /** Sink calls must not break the loop: a failing sink is logged and capture carries on. */
  private report(call: () => void): void {
    try {
      call();
    } catch (err) {
      this.deps.logger.error({ err }, 'frame sink failed');
    }
  }

  private crashed(err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    this.deps.logger.error({ err: error }, 'capture supervisor stopped after an unexpected error');
    this.report(() => this.deps.sink.captureError(new Error(`capture of ${this.deps.description} stopped: ${error.message}`)));
  }
}
