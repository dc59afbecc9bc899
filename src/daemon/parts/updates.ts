import type { MqttPublisher } from '../../mqtt/mqtt-publisher.js';
import type { ModelManager } from '../model-manager.js';
import type { Pipeline } from '../pipeline.js';

export interface UpdatesPartDeps {
  models: Pick<ModelManager, 'startUpdates' | 'stopUpdates'>;
  pipeline: Pick<Pipeline, 'setClassifier'>;
  mqtt: Pick<MqttPublisher, 'republish'>;
}

/** Polling for model updates, once everything a swapped-in model touches is up. */
export function updatesPart(deps: UpdatesPartDeps) {
  const { models, pipeline, mqtt } = deps;
  return {
    name: 'updates',
    start: () =>
      models.startUpdates(async (next) => {
        await pipeline.setClassifier(next);
        mqtt.republish(); // availability carries the model version
      }),
    // Early in the shutdown: a download or validation in progress is aborted (its process killed).
    stop: () => models.stopUpdates(),
  };
}
