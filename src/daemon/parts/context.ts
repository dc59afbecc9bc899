import type { Logger } from '../../core/logger.js';
import type { Clock } from '../../core/clock.js';
import type { Config } from '../../config/schema.js';
import type { ModelRef } from '../../mqtt/payloads.js';
import type { ModelManager } from '../model-manager.js';
import type { DaemonBus } from '../events.js';

/** What every part may be given: the root's logger, clock, config and bus. */
export interface PartContext {
  logger: Logger;
  clock: Clock;
  config: Config;
  version: string;
  env: NodeJS.ProcessEnv;
  bus: DaemonBus;
}

export function childLogger(ctx: Pick<PartContext, 'logger'>, module: string): Logger {
  return ctx.logger.child({ module });
}

/** The serving model as payloads name it; undefined while none is loaded. */
export function modelRef(models: Pick<ModelManager, 'model'>): ModelRef | undefined {
  const model = models.model;
  return model ? { name: model.name, version: model.version, sha256: model.sha256 } : undefined;
}
