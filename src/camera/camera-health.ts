import type { Clock } from '../core/clock.js';
import type { FrameSink } from './frame.js';

export type CameraState = 'starting' | 'online' | 'offline' | 'disabled' | 'ended';

export interface CameraHealthSnapshot {
  state: CameraState;
  /** When the current state began (epoch ms). */
  since: number;
  lastError: string | null;
  /** Frames per second over the last `fpsWindowMs`. */
  fps: number;
  reconnectsLastHour: number;
  stallsLastHour: number;
  /**
   * Set (epoch ms) while the camera makes no progress: its source reported a stall (a stream
   * with no frame for stall_timeout_ms, a directory whose files are all refused, a hung read)
   * and no frame has come since. Absent otherwise.
   */
  stalledSince?: number;
}

export interface CameraHealthDeps {
  clock: Clock;
  /** Called on every state change (and on a new error while offline). */
  onChange: (snapshot: CameraHealthSnapshot) => void;
  fpsWindowMs?: number;
}

const HOUR = 3_600_000;

/**
 * What a camera is doing, derived from what its source reports: frames make it online,
 * capture errors offline (with the reason), restarts are counted over a sliding hour.
 */
export class CameraHealth {
  private state: CameraState = 'starting';
  private since: number;
  private lastError: string | null = null;
  private readonly frames: number[] = [];
  private readonly reconnects: number[] = [];
  private readonly stalls: number[] = [];
  private firstFrameAt: number | undefined;
  private stalledSince: number | undefined;

  constructor(private readonly deps: CameraHealthDeps) {
    this.since = deps.clock.now();
  }

  frame(): void {
    const now = this.deps.clock.monotonic();
    this.firstFrameAt ??= now;
    this.frames.push(now);
    this.trim(this.frames, now, this.window);
    this.stalledSince = undefined;
    if (this.state !== 'online') this.enter('online');
  }

  error(err: Error): void {
    const message = err.message;
    const changed = this.state !== 'offline' || this.lastError !== message;
    this.lastError = message;
    if (this.state === 'disabled' || this.state === 'ended') return;
    if (changed) this.enter('offline');
  }

  restarting(reason: 'stall' | 'exit' | 'error', err: Error): void {
    const now = this.deps.clock.monotonic();
    this.reconnects.push(now);
    if (reason === 'stall') {
      this.stalls.push(now);
      // Set before error(), so the status published for the change already carries it.
      this.stalledSince ??= this.deps.clock.now();
    }
    this.error(err);
  }

  ended(): void {
    this.enter('ended');
  }

  disabled(): void {
    this.enter('disabled');
  }

  /** The daemon stopped the camera: offline, and not because of a fault. */
  stopped(): void {
    this.lastError = null;
    this.stalledSince = undefined;
    this.enter('offline');
  }

  /** Back to "starting" (a paused camera resumed); frames or errors decide what comes next. */
  restart(): void {
    this.enter('starting');
  }

  snapshot(): CameraHealthSnapshot {
    const now = this.deps.clock.monotonic();
    this.trim(this.frames, now, this.window);
    this.trim(this.reconnects, now, HOUR);
    this.trim(this.stalls, now, HOUR);
    return {
      state: this.state,
      since: this.since,
      lastError: this.lastError,
      fps: Math.round(this.fps(now) * 100) / 100,
      reconnectsLastHour: this.reconnects.length,
      stallsLastHour: this.stalls.length,
      ...(this.stalledSince !== undefined ? { stalledSince: this.stalledSince } : {}),
    };
  }

  private fps(now: number): number {
    const n = this.frames.length;
    const first = this.frames[0];
    const last = this.frames[n - 1];
    if (first === undefined || last === undefined) return 0;
    // A full window: frames in it per second. A younger camera: the rate between its frames.
    if (this.firstFrameAt !== undefined && now - this.firstFrameAt >= this.window) return (n * 1000) / this.window;
    return n > 1 && last > first ? ((n - 1) * 1000) / (last - first) : 0;
  }

  private get window(): number {
    return this.deps.fpsWindowMs ?? 10_000;
  }

  private enter(state: CameraState): void {
    // Ended, disabled, stopped or restarted: whatever stalled is no longer running.
    if (state !== 'offline') this.stalledSince = undefined;
    this.state = state;
    this.since = this.deps.clock.now();
    this.deps.onChange(this.snapshot());
  }

  private trim(list: number[], now: number, span: number): void {
    let drop = 0;
    while (drop < list.length && now - list[drop]! > span) drop++;
    if (drop > 0) list.splice(0, drop);
  }
}

/** The sink a source sees: frames and failures go to the pipeline's slot and to the camera's health. */
export function monitoredSink(slot: Omit<FrameSink, 'restarting'>, health: CameraHealth): FrameSink {
  return {
    push: (frame) => {
      health.frame();
      slot.push(frame);
    },
    whenIdle: () => slot.whenIdle(),
    captureError: (err) => {
      health.error(err);
      slot.captureError(err);
    },
    end: () => {
      health.ended();
      slot.end();
    },
    restarting: (reason, err) => health.restarting(reason, err),
    skipped: (file, reason) => slot.skipped?.(file, reason),
  };
}
