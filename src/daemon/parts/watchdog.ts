import type { MqttPublisher } from '../../mqtt/mqtt-publisher.js';
import type { SdNotifier } from '../../service/sd-notify.js';
import { ServiceWatchdog } from '../../service/watchdog.js';
import type { ModelManager } from '../model-manager.js';
import type { Cameras } from '../cameras.js';
import type { Pipeline } from '../pipeline.js';
import { childLogger, modelRef, type PartContext } from './context.js';

export interface WatchdogPartDeps extends Pick<PartContext, 'logger' | 'clock'> {
  notifier: SdNotifier;
  pipeline: Pipeline;
  cameras: Pick<Cameras, 'health'>;
  models: Pick<ModelManager, 'model'>;
  mqtt: Pick<MqttPublisher, 'connected'>;
}

/** READY=1, STATUS= and WATCHDOG=1 from what the pipeline does, once every part is up. */
export function watchdogPart(deps: WatchdogPartDeps) {
  const { cameras, models, mqtt } = deps;
  const watchdog = new ServiceWatchdog({
    logger: childLogger(deps, 'watchdog'),
    clock: deps.clock,
    notifier: deps.notifier,
    pipeline: deps.pipeline,
    cameras: () => cameras.health(),
    model: () => modelRef(models),
    mqttConnected: () => mqtt.connected,
  });
  return { name: 'watchdog', start: () => watchdog.start(), stop: () => watchdog.stop(), watchdog };
}
