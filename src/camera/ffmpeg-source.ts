/**
 * A camera read by one long-running ffmpeg (V4L2, RTSP, HTTP MJPEG or snapshots, a file, a
 * lavfi test pattern): ffmpeg decodes, limits the rate to `fps` and writes either JPEG frames
 * or, when the model input is known, RGB already scaled and cropped for the model, so the
 * daemon decodes nothing (see resolveOutput in ffmpeg-args.ts for the measurements).
 * The process itself is run by ProcessSupervisor (watchdog, restarts, backoff, kill).
 */
import type { FfmpegSourceConfig } from '../config/schema.js';
import { ffmpegPlan, type FfmpegPlan, type ModelInput } from './ffmpeg-args.js';
import { MjpegSplitter } from './process/mjpeg-splitter.js';
import { SupervisedSource, type ProcessSpec, type SupervisedDeps } from './supervised-source.js';
import { RawSplitter } from './process/raw-splitter.js';

export type FfmpegSourceDeps = SupervisedDeps<FfmpegSourceConfig> & {
  /** Where `password_env` is looked up (process.env in the daemon). */
  env: Record<string, string | undefined>;
  /** The model's input; without it `output: raw` is refused and `auto` means mjpeg. */
  modelInput?: ModelInput;
};

export class FfmpegSource extends SupervisedSource<FfmpegSourceConfig, FfmpegSourceDeps> {
  protected plan(): ProcessSpec {
    const { config, env, modelInput, camera, logger } = this.deps;
    const plan = ffmpegPlan(config, { env, ...(modelInput ? { modelInput } : {}) });
    logger.debug({ camera, input: plan.description, output: plan.output.kind, args: plan.redact(plan.args.join(' ')) }, 'starting ffmpeg');
    return {
      command: 'ffmpeg',
      args: plan.args,
      description: plan.description,
      redact: plan.redact,
      createSplitter: (splitterDeps) => splitterFor(plan, splitterDeps),
      endOnCleanExit: plan.endOnCleanExit,
      raw: plan.output.kind === 'raw' ? { width: plan.output.width, height: plan.output.height } : undefined,
    };
  }
}

function splitterFor(plan: FfmpegPlan, deps: ConstructorParameters<typeof MjpegSplitter>[0]): MjpegSplitter | RawSplitter {
  return plan.output.kind === 'raw'
    ? new RawSplitter({ ...deps, width: plan.output.width, height: plan.output.height })
    : new MjpegSplitter(deps);
}
