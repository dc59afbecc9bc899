import type { LabelWatcher } from '../rules/label-watch.js';
import type { MqttPublisher } from '../mqtt/mqtt-publisher.js';
import type { DaemonBus } from './events.js';
import type { Pipeline } from './pipeline.js';
import type { PredictionRouter } from './prediction-router.js';

/**
 * The owners of a camera's state outside Cameras (which drops its health and latest frame
 * itself). Each forgets a removed camera on cameraRemoved, under its own key on the bus.
 */
export interface CameraOwners {
  /** Its frame slot and counters. */
  pipeline: Pick<Pipeline, 'removeCamera'>;
  /** Its change filter and waiters. */
  router: Pick<PredictionRouter, 'forget'>;
  /** Its debounced label states. */
  watcher: Pick<LabelWatcher, 'forget' | 'rulesFor'>;
  /** Its retained status and label states. */
  mqtt: Pick<MqttPublisher, 'forgetCamera'>;
}

export function forgetRemovedCameras(bus: Pick<DaemonBus, 'on'>, owners: CameraOwners): void {
  const { pipeline, router, watcher, mqtt } = owners;
  bus.on('cameraRemoved', pipeline, ({ camera }) => pipeline.removeCamera(camera));
  bus.on('cameraRemoved', router, ({ camera }) => router.forget(camera));
  bus.on('cameraRemoved', watcher, ({ camera }) => watcher.forget(camera));
  // The label topics of the rules in force: a label retained by an earlier run goes too.
  bus.on('cameraRemoved', mqtt, ({ camera }) => mqtt.forgetCamera(camera, watcher.rulesFor(camera).map((r) => r.slug)));
}
