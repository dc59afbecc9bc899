import { HomeAssistant } from '../../mqtt/home-assistant.js';
import type { MqttPublisher } from '../../mqtt/mqtt-publisher.js';
import type { LabelWatcher } from '../../rules/label-watch.js';
import type { Cameras } from '../cameras.js';
import { childLogger, type PartContext } from './context.js';

export interface HomeAssistantPartDeps extends Pick<PartContext, 'logger' | 'clock' | 'config' | 'version'> {
  mqtt: MqttPublisher;
  cameras: Pick<Cameras, 'ids'>;
  watcher: Pick<LabelWatcher, 'rulesFor'>;
}

/** Home Assistant discovery (homeassistant.enabled). */
export function homeAssistantPart(deps: HomeAssistantPartDeps) {
  const { config, mqtt, cameras, watcher } = deps;
  const ha = new HomeAssistant({
    logger: childLogger(deps, 'homeassistant'),
    clock: deps.clock,
    config: config.homeassistant,
    mqtt,
    context: () => ({ deviceId: config.device_id, version: deps.version, topics: mqtt.topics, cameras: cameras.ids(), rulesFor: (c) => watcher.rulesFor(c) }),
  });
  return { name: 'homeassistant', start: () => ha.start(), stop: () => ha.stop(), ha };
}
