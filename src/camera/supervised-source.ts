import { spawn as nodeSpawn } from 'node:child_process';
import type { FrameSource, RawFormat, SourceDeps } from './frame.js';
import type { SpawnFn } from './process/parent-death.js';
import { ProcessSupervisor, supervisionTiming, type ProcessSupervisorDeps } from './process/process-supervisor.js';

/** The config fields every long-running process source has (ffmpeg, gst-launch). */
interface StreamConfig {
  fps: number;
  stall_timeout_ms: number;
  backoff_initial_ms: number;
  backoff_max_ms: number;
  max_frame_bytes: number;
}

export type SupervisedDeps<C> = SourceDeps<C> & {
  /** child_process.spawn unless a test injects another. */
  spawn?: SpawnFn;
  /** Jitter source for restart delays; Math.random unless injected. */
  random?: () => number;
};

/** What a source runs and how it reads the output. */
export type ProcessSpec = Pick<ProcessSupervisorDeps, 'command' | 'args' | 'description' | 'redact' | 'createSplitter' | 'endOnCleanExit'> & {
  /** Set when the process writes packed RGB frames of this size. */
  raw?: RawFormat | undefined;
  /** Whether to pass on the frame that just arrived (a rate limit); all of them when absent. */
  accept?: () => boolean;
};

/**
 * A camera read from one long-running child process, run by ProcessSupervisor (watchdog,
 * restarts with backoff, process-group kill). Subclasses say what to run.
 */
export abstract class SupervisedSource<C extends StreamConfig, D extends SupervisedDeps<C>> implements FrameSource {
  private supervisor: ProcessSupervisor | undefined;
  private stopping: Promise<void> | undefined;
  private seq = 0;

  constructor(protected readonly deps: D) {}

  /** The process to run; throws on configuration errors (nothing is started then). */
  protected abstract plan(): ProcessSpec;

  /** Rejects on configuration errors; capture errors come later, through the sink. */
  async start(): Promise<void> {
    if (this.supervisor) return;
    const { config, camera, sink, clock, logger } = this.deps;
    const spec = this.plan();
    const { raw, accept, ...process } = spec;
    const supervisor = new ProcessSupervisor({
      ...process,
      maxFrameBytes: config.max_frame_bytes,
      onFrame: (data) => {
        if (accept && !accept()) return;
        this.seq += 1;
        sink.push({ camera, seq: this.seq, capturedAt: clock.now(), source: spec.description, data, ...(raw ? { raw } : {}) });
      },
      sink,
      spawn: this.deps.spawn ?? nodeSpawn,
      clock,
      logger,
      timing: supervisionTiming(config),
      random: this.deps.random ?? Math.random,
    });
    this.supervisor = supervisor;
    await supervisor.start();
  }

  /**
   * Resolves once the process has exited (SIGTERM, SIGKILL after KILL_GRACE_MS); a stop() made
   * while another is in progress waits for the same exit rather than returning at once.
   */
  async stop(): Promise<void> {
    const supervisor = this.supervisor;
    this.supervisor = undefined;
    if (supervisor) this.stopping = supervisor.stop();
    await this.stopping;
  }

  /** The running process's pid (tests, diagnostics). */
  get pid(): number | undefined {
    return this.supervisor?.pid;
  }
}
