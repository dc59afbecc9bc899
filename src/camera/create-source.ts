import type { SourceConfig } from '../config/schema.js';
import { DirectorySource } from './directory-source.js';
import type { ModelInput } from './ffmpeg-args.js';
import { FfmpegSource } from './ffmpeg-source.js';
import type { FrameSource, SourceDeps } from './frame.js';
import { GstreamerSource } from './gstreamer-source.js';
import { SyntheticSource } from './synthetic-source.js';
import { WebcamSource } from './webcam-source.js';

export type CreateSourceDeps = Omit<SourceDeps<unknown>, 'config'> & {
  /** Scratch space for sources that capture through files (the webcam). */
  tmpDir: string;
  /** Where ffmpeg sources look up `password_env`; an empty environment when absent. */
  env?: Record<string, string | undefined>;
  /** The model's input, so ffmpeg can scale and crop for it (output raw); mjpeg when absent. */
  modelInput?: ModelInput;
};

/** The FrameSource for one camera's `source` config. */
export function createSource(cfg: SourceConfig, deps: CreateSourceDeps): FrameSource {
  const { tmpDir, env, modelInput, ...common } = deps;
  switch (cfg.type) {
    case 'directory':
      return new DirectorySource({ ...common, config: cfg });
    case 'webcam':
      return new WebcamSource({ ...common, config: cfg, tmpDir });
    case 'synthetic':
      return new SyntheticSource({ ...common, config: cfg });
    case 'ffmpeg':
      return new FfmpegSource({ ...common, config: cfg, env: env ?? {}, ...(modelInput ? { modelInput } : {}) });
    case 'gstreamer':
      return new GstreamerSource({ ...common, config: cfg });
    default: {
      // A new source type in the schema fails to compile here until it is handled.
      const unknown: never = cfg;
      throw new Error(`unknown source type ${(unknown as { type: string }).type}`);
    }
  }
}
