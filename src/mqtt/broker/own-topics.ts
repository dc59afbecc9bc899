import { createTopics } from '../topics.js';
import { nodeId } from '../ha-discovery.js';

/** The daemon the embedded broker runs in: whose topics only its own client may write. */
export interface BrokerOwner {
  baseTopic: string;
  deviceId: string;
  /** Home Assistant's discovery prefix (homeassistant.discovery_prefix). */
  discoveryPrefix: string;
}

/**
 * Whether a topic is the daemon's to write: everything under `B/D/` (status, predictions,
 * labels, snapshots, responses: what subscribers and Home Assistant trust as the device's
 * word) except `B/D/request/...`, where clients send commands, and this device's Home
 * Assistant discovery configs `<prefix>/<component>/<node>/...`, whichever components are
 * announced now (a forged config could point an entity anywhere). Other topics are anyone's.
 */
export function ownTopics(owner: BrokerOwner): (topic: string) => boolean {
  const requests = createTopics(owner.baseTopic, owner.deviceId).request('');
  const root = requests.slice(0, -'request/'.length);
  const discovery = `${owner.discoveryPrefix.replace(/\/+$/, '')}/`;
  const node = nodeId(owner.deviceId);
  return (topic) => {
    if (topic.startsWith(requests)) return false;
    if (topic.startsWith(root) || topic === root.slice(0, -1)) return true;
    return topic.startsWith(discovery) && topic.slice(discovery.length).split('/')[1] === node;
  };
}

/**
 * Whether a topic carries requests to this daemon. Requests may hold the command secret
 * (docs/mqtt.md#security), so the broker delivers them to the daemon's client only: a client
 * subscribed to `#` must not learn it.
 */
export function requestTopics(owner: BrokerOwner): (topic: string) => boolean {
  const requests = createTopics(owner.baseTopic, owner.deviceId).request('');
  return (topic) => topic.startsWith(requests);
}
