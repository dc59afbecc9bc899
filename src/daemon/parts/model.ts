import type { ModelUpdatePayload } from '../../mqtt/payloads.js';
import { ModelManager } from '../model-manager.js';
import type { PartContext } from './context.js';

export interface ModelPartDeps extends Pick<PartContext, 'logger' | 'clock' | 'config' | 'version' | 'bus'> {
  workerUrl: URL;
  fetch: typeof fetch;
}

/**
 * The serving model (and its updater, with updates.manifest_url). First: a broken model is a
 * startup error, before anything is announced. Stopped even when its start fails or is aborted
 * (a first install holds an updater and a store).
 */
export function modelPart(deps: ModelPartDeps) {
  const { bus, ...rest } = deps;
  // The updater reports while the model starts, before MQTT is up: the mqtt part retains the
  // latest of those when it starts, and hears the later ones on the bus.
  let latest: ModelUpdatePayload | undefined;
  const models = new ModelManager({
    ...rest,
    report: (payload) => {
      latest = payload;
      bus.emit('modelReported', payload);
    },
  });
  return {
    name: 'model',
    stopOnFailedStart: true,
    start: () => models.start(),
    stop: () => models.stop(),
    models,
    reported: (): ModelUpdatePayload | undefined => latest,
  };
}
