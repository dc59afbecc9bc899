import { EmbeddedBroker } from '../../mqtt/embedded-broker.js';
import { childLogger, type PartContext } from './context.js';

/** The in-process broker (mqtt.url: embedded); its own topics are writable by the daemon's client only. */
export function brokerPart(ctx: Pick<PartContext, 'logger' | 'config'>) {
  const { config } = ctx;
  const owner = { baseTopic: config.mqtt.base_topic, deviceId: config.device_id, discoveryPrefix: config.homeassistant.discovery_prefix };
  const broker = new EmbeddedBroker({ logger: childLogger(ctx, 'broker'), config: config.mqtt.embedded, owner });
  return { name: 'broker', start: () => broker.start(), stop: () => broker.stop(), broker };
}
