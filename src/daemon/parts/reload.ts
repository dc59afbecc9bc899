import type { Config } from '../../config/schema.js';
import { ConfigReloader, type ConfigReloaderDeps } from '../config-reloader.js';
import type { ModelManager } from '../model-manager.js';
import type { Classifier } from '../../inference/classifier.js';
import { childLogger, type PartContext } from './context.js';

export interface ReloadPartDeps extends Pick<PartContext, 'logger' | 'clock' | 'config'>, Pick<ConfigReloaderDeps, 'settings' | 'watcher' | 'cameras' | 'stats' | 'mqtt' | 'resyncDiscovery'> {
  models: Pick<ModelManager, 'current'>;
  /** The model the daemon started with (its labels until another is swapped in). */
  classifier: Pick<Classifier, 'labelList'>;
  setLogLevel?: ((level: Config['log']['level']) => void) | undefined;
}

/** SIGHUP: last, so it stops first: a reload in progress finishes before the parts it touches stop. */
export function reloadPart(deps: ReloadPartDeps) {
  const { config, logger, models, classifier } = deps;
  const reloader = new ConfigReloader({
    logger: childLogger(deps, 'config'),
    clock: deps.clock,
    config,
    deviceId: config.device_id,
    labels: () => models.current?.labelList ?? classifier.labelList,
    setLogLevel: deps.setLogLevel ?? ((level) => (logger.level = level)),
    settings: deps.settings,
    watcher: deps.watcher,
    cameras: deps.cameras,
    stats: deps.stats,
    mqtt: deps.mqtt,
    ...(deps.resyncDiscovery ? { resyncDiscovery: deps.resyncDiscovery } : {}),
  });
  return { name: 'reload', start: () => reloader.start(), stop: () => reloader.stop(), reloader };
}
