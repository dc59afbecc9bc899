import type { connect as mqttConnect } from 'mqtt';
import { MqttPublisher } from '../../mqtt/mqtt-publisher.js';
import type { EmbeddedBroker } from '../../mqtt/embedded-broker.js';
import type { ModelUpdatePayload } from '../../mqtt/payloads.js';
import type { RuntimeSettings } from '../../config/runtime-settings.js';
import type { ModelManager } from '../model-manager.js';
import { childLogger, modelRef, type PartContext } from './context.js';

export interface MqttPartDeps extends Pick<PartContext, 'logger' | 'clock' | 'config' | 'version' | 'bus'> {
  broker: Pick<EmbeddedBroker, 'url' | 'credentials'> | undefined;
  models: Pick<ModelManager, 'model'>;
  /** The latest model report made before MQTT was up. */
  modelReported: () => ModelUpdatePayload | undefined;
  settings: Pick<RuntimeSettings, 'get'>;
  /** The cameras running now (the configured ones until the cameras part started). */
  cameraIds: () => string[];
  connect?: typeof mqttConnect | undefined;
}

/** MqttPublisher: availability, retained state, the outbox. */
export function mqttPart(deps: MqttPartDeps) {
  const { config, broker, models, settings, bus } = deps;
  const mqtt = new MqttPublisher({
    logger: childLogger(deps, 'mqtt'),
    clock: deps.clock,
    // The embedded broker knows the daemon's client by these (not mqtt.username: that is for an external broker).
    config: broker ? { ...config.mqtt, ...broker.credentials, password_file: undefined } : config.mqtt,
    deviceId: config.device_id,
    url: broker?.url ?? config.mqtt.url,
    embedded: broker !== undefined,
    version: deps.version,
    statusDetails: () => ({ model: modelRef(models) ?? null, execution_provider: models.model?.provider ?? null, cameras: deps.cameraIds() }),
    predictionExpiry: () => settings.get().expiry,
    stateDir: config.state_dir,
    ...(deps.connect ? { connect: deps.connect } : {}),
  });
  const retainModel = (p: ModelUpdatePayload): void => mqtt.retain(mqtt.topics.model, JSON.stringify(p));
  return {
    name: 'mqtt',
    start: async () => {
      await mqtt.start();
      const before = deps.modelReported();
      if (before) retainModel(before);
      bus.on('modelReported', mqtt, retainModel);
      bus.on('modelSwapped', mqtt, () => mqtt.republish());
    },
    stop: async () => {
      bus.removeListeners(mqtt);
      await mqtt.stop();
    },
    mqtt,
  };
}
