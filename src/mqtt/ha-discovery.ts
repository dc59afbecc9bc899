import type { Topics } from './topics.js';
import type { ResolvedRule } from '../rules/label-watch.js';

export interface DiscoveryContext {
  prefix: string;
  deviceId: string;
  version: string;
  topics: Topics;
  cameras: string[];
  rulesFor: (camera: string) => ResolvedRule[];
}

export interface DiscoveryMessage {
  topic: string;
  payload: Record<string, unknown>;
}

/** One node per daemon, so `<prefix>/+/<node>/+/config` finds everything this device announced. */
export function nodeId(deviceId: string): string {
  return `edge_classifier_${deviceId.replace(/[^a-zA-Z0-9_-]/g, '_')}`;
}

/**
 * Home Assistant MQTT discovery, following the `<prefix>/<component>/<node>/<object>/config`
 * convention: each camera is a device with sensors for top label and score, fps, inference
 * time and model version, plus one binary_sensor per watched label. Entities are available
 * while the daemon is online and the camera is not offline (availability_mode all).
 */
export function discoveryMessages(ctx: DiscoveryContext): DiscoveryMessage[] {
  const node = nodeId(ctx.deviceId);
  const origin = { name: 'edge-classifier', sw_version: ctx.version };
  const out: DiscoveryMessage[] = [];
  for (const camera of ctx.cameras) {
    const uid = `${node}_${camera}`;
    const device = {
      identifiers: [uid],
      name: `${ctx.deviceId} ${camera}`,
      manufacturer: 'edge-classifier',
      model: 'camera classifier',
      sw_version: ctx.version,
    };
    const availability = [
      { topic: ctx.topics.status, value_template: "{{ 'online' if value_json.state == 'online' else 'offline' }}" },
      { topic: ctx.topics.cameraStatus(camera), value_template: "{{ 'offline' if value_json.state == 'offline' and not value_json.ended else 'online' }}" },
    ];
    const entity = (component: string, object: string, fields: Record<string, unknown>): void => {
      out.push({
        topic: `${ctx.prefix}/${component}/${node}/${camera}_${object}/config`,
        payload: { unique_id: `${uid}_${object}`, object_id: `${uid}_${object}`, availability, availability_mode: 'all', device, origin, ...fields },
      });
    };
    const prediction = ctx.topics.prediction(camera);
    entity('sensor', 'top_label', {
      name: 'Top label',
      state_topic: prediction,
      value_template: "{{ value_json.top[0].label if value_json.top else 'none' }}",
      icon: 'mdi:tag-text',
    });
    entity('sensor', 'top_score', {
      name: 'Top score',
      state_topic: prediction,
      value_template: '{{ ((value_json.top[0].score if value_json.top else 0) * 100) | round(1) }}',
      unit_of_measurement: '%',
      state_class: 'measurement',
    });
    entity('sensor', 'fps', {
      name: 'Frames per second',
      state_topic: ctx.topics.stats,
      value_template: `{{ value_json.cameras['${camera}'].fps if '${camera}' in value_json.cameras else 0 }}`,
      unit_of_measurement: 'fps',
      state_class: 'measurement',
      entity_category: 'diagnostic',
    });
    entity('sensor', 'inference_time', {
      name: 'Inference time',
      state_topic: prediction,
      value_template: '{{ value_json.latency_ms.inference }}',
      unit_of_measurement: 'ms',
      device_class: 'duration',
      state_class: 'measurement',
      entity_category: 'diagnostic',
    });
    entity('sensor', 'model_version', {
      name: 'Model version',
      state_topic: ctx.topics.status,
      value_template: "{{ value_json.model.version if value_json.model else 'none' }}",
      entity_category: 'diagnostic',
      icon: 'mdi:brain',
    });
    for (const rule of ctx.rulesFor(camera)) {
      entity('binary_sensor', `label_${rule.slug.replace(/-/g, '_')}`, {
        name: rule.name ?? rule.label,
        state_topic: ctx.topics.label(camera, rule.slug),
        value_template: '{{ value_json.state }}',
        payload_on: 'ON',
        payload_off: 'OFF',
        device_class: 'occupancy',
      });
    }
  }
  return out;
}
