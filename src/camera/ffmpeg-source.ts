/**
 * A camera read by one long-running ffmpeg (V4L2, RTSP, HTTP MJPEG or snapshots, a file, a
 * lavfi test pattern): ffmpeg decodes, limits the rate to `fps` and writes either JPEG frames
 * or, when the model input is known, RGB already scaled and cropped for the model, so the
 * daemon decodes nothing (see resolveOutput in ffmpeg-args.ts for the measurements).
 * The process itself is run by ProcessSupervisor (watchdog, restarts, backoff, kill).
 */
import { spawn as nodeSpawn } from 'node:child_process';
import type { FfmpegSourceConfig } from '../config/schema.js';
import { ffmpegPlan, type FfmpegPlan, type ModelInput } from './ffmpeg-args.js';
import type { FrameSource, SourceDeps } from './frame.js';
import { MjpegSplitter } from './process/mjpeg-splitter.js';
import type { SpawnFn } from './process/parent-death.js';
import { ProcessSupervisor, supervisionTiming } from './process/process-supervisor.js';
import { RawSplitter } from './process/raw-splitter.js';

export type FfmpegSourceDeps = SourceDeps<FfmpegSourceConfig> & {
  /** Where `password_env` is looked up (process.env in the daemon). */
  env: Record<string, string | undefined>;
  /** The model's input; without it `output: raw` is refused and `auto` means mjpeg. */
  modelInput?: ModelInput;
  /** child_process.spawn unless a test injects another. */
  spawn?: SpawnFn;
  /** Jitter source for restart delays; Math.random unless injected. */
  random?: () => number;
};

export class FfmpegSource implements FrameSource {
  private supervisor: ProcessSupervisor | undefined;
  private seq = 0;

  constructor(private readonly deps: FfmpegSourceDeps) {}

  /** Rejects on configuration errors (nothing is started then); capture errors come later, through the sink. */
  async start(): Promise<void> {
    if (this.supervisor) return;
    const { config, env, modelInput, camera, sink, clock, logger } = this.deps;
    const plan = ffmpegPlan(config, { env, ...(modelInput ? { modelInput } : {}) });
    const raw = plan.output.kind === 'raw' ? { width: plan.output.width, height: plan.output.height } : undefined;
    logger.debug({ camera, input: plan.description, output: plan.output.kind, args: plan.redact(plan.args.join(' ')) }, 'starting ffmpeg');
    const supervisor = new ProcessSupervisor({
      command: 'ffmpeg',
      args: plan.args,
      description: plan.description,
      redact: plan.redact,
      createSplitter: (splitterDeps) => splitterFor(plan, splitterDeps),
      maxFrameBytes: config.max_frame_bytes,
      onFrame: (data) => {
        this.seq += 1;
        sink.push({ camera, seq: this.seq, capturedAt: clock.now(), source: plan.description, data, ...(raw ? { raw } : {}) });
      },
      endOnCleanExit: plan.endOnCleanExit,
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

  /** Resolves once ffmpeg has exited (SIGTERM, SIGKILL after KILL_GRACE_MS). */
  async stop(): Promise<void> {
    const supervisor = this.supervisor;
    this.supervisor = undefined;
    await supervisor?.stop();
  }

  /** The running ffmpeg's pid (tests, diagnostics). */
  get pid(): number | undefined {
    return this.supervisor?.pid;
  }
}

function splitterFor(plan: FfmpegPlan, deps: ConstructorParameters<typeof MjpegSplitter>[0]): MjpegSplitter | RawSplitter {
  return plan.output.kind === 'raw'
    ? new RawSplitter({ ...deps, width: plan.output.width, height: plan.output.height })
    : new MjpegSplitter(deps);
}
