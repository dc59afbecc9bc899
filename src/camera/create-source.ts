import type { SourceConfig } from '../config/schema.js';
import { DirectorySource } from './directory-source.js';
import type { FrameSource, SourceDeps } from './frame.js';
import { SyntheticSource } from './synthetic-source.js';
import { WebcamSource } from './webcam-source.js';

export type CreateSourceDeps = Omit<SourceDeps<unknown>, 'config'> & {
  /** Scratch space for sources that capture through files (the webcam). */
  tmpDir: string;
};

/** The FrameSource for one camera's `source` config. */
export function createSource(cfg: SourceConfig, deps: CreateSourceDeps): FrameSource {
  const { tmpDir, ...common } = deps;
  switch (cfg.type) {
    case 'directory':
      return new DirectorySource({ ...common, config: cfg });
    case 'webcam':
      return new WebcamSource({ ...common, config: cfg, tmpDir });
    case 'synthetic':
      return new SyntheticSource({ ...common, config: cfg });
    default: {
      // A new source type in the schema fails to compile here until it is handled.
      const unknown: never = cfg;
      throw new Error(`unknown source type ${(unknown as { type: string }).type}`);
    }
  }
}
