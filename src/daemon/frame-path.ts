import { ConfigError } from '../config/load.js';
import type { RuntimeSettings } from '../config/runtime-settings.js';
import type { Classifier } from '../inference/classifier.js';
import { LatencyWindow } from '../core/latency-window.js';
import { LabelWatcher, resolveRules } from '../rules/label-watch.js';
import type { MqttPublisher } from '../mqtt/mqtt-publisher.js';
import type { PredictionPayload } from '../mqtt/payloads.js';
import { PREVIEW_TOP } from '../service/http/ops-http.js';
import { Pipeline } from './pipeline.js';
import { PredictionRouter } from './prediction-router.js';
import type { ModelManager } from './model-manager.js';
import { forgetRemovedCameras } from './camera-owners.js';
import { childLogger, modelRef, type PartContext } from './parts/context.js';

export interface FramePathDeps extends Pick<PartContext, 'logger' | 'clock' | 'config' | 'bus'> {
  models: Pick<ModelManager, 'model' | 'serveOn'>;
  classifier: Classifier;
  /** Made before MQTT starts (watchRules): a watch rule naming an unknown label stops the start first. */
  watcher: LabelWatcher;
  settings: Pick<RuntimeSettings, 'get'>;
  mqtt: Pick<MqttPublisher, 'publishPrediction' | 'publishLabelEvent' | 'forgetCamera'>;
  /** Called with every published prediction (the demo prints them). */
  onPrediction?: ((payload: PredictionPayload) => void) | undefined;
}

/**
 * The path a frame takes, in order:
 *   1. a camera source pushes it into its camera's slot (`pipeline.sink(id)`, given to the cameras part);
 *   2. the slot keeps the latest frame per camera (FrameSlots, inside Pipeline);
 *   3. Pipeline decodes and crops it, and the inference worker classifies it;
 *   4. the result is `frameClassified` on the bus, heard in this order by:
 *      the inference latency window (stats), the router (publish rules, label watch -> MQTT),
 *      and, subscribed by the http part, the preview and metrics.
 */
export function framePath(deps: FramePathDeps) {
  const { config, clock, bus, settings, mqtt, models, watcher } = deps;
  const router = new PredictionRouter({
    clock,
    deviceId: config.device_id,
    settings: () => settings.get(),
    watcher,
    model: () => modelRef(models),
    publishPrediction: (p) => {
      mqtt.publishPrediction(p);
      deps.onPrediction?.(p);
    },
    publishLabel: (e) => mqtt.publishLabelEvent(e),
  });
  const pipeline = new Pipeline({
    logger: childLogger(deps, 'pipeline'),
    clock,
    classifier: deps.classifier,
    // The preview shows top-5 bars; the router trims MQTT payloads back to top_k.
    topK: () => Math.max(settings.get().top_k, config.http.enabled && config.http.preview ? PREVIEW_TOP : 0),
    watch: () => watcher.indices,
    publish: (r) => bus.emit('frameClassified', r),
    onInferenceError: () => bus.emit('inferenceFailed', { cause: 'frame' }),
  });
  // A model the updater swaps in serves here, between two frames.
  models.serveOn(pipeline);
  const inference = new LatencyWindow();
  bus.on('frameClassified', inference, (r) => inference.add(r.latency.inference));
  bus.on('frameClassified', router, (r) => router.handle(r));
  forgetRemovedCameras(bus, { pipeline, router, watcher, mqtt });
  return {
    name: 'pipeline',
    start: () => pipeline.start(),
    stop: async () => {
      await pipeline.stop();
      router.cancelWaiters();
    },
    pipeline,
    router,
    watcher,
    inference,
  };
}

/** Watch rules bound to the model's labels; an unknown label is a configuration error. */
export function watchRules(rules: Parameters<typeof resolveRules>[0], labels: readonly string[]): LabelWatcher {
  try {
    return new LabelWatcher(resolveRules(rules, labels));
  } catch (err) {
    throw new ConfigError('config', [(err as Error).message]);
  }
}
