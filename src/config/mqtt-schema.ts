import { z } from 'zod';
import { slug } from './primitives.js';
import { EmbeddedBrokerSchema } from './embedded-broker-schema.js';

// MQTT connection, publishing options, label watch rules, Home Assistant (commands: commands-schema.ts).

export const MqttSchema = z
  .object({
    url: z
      .string()
      .regex(/^(embedded|(mqtts?|wss?|tcp):\/\/.+)$/, 'mqtt://host:port, mqtts://..., ws(s)://... or "embedded"')
      .default('embedded'),
    base_topic: z.string().min(1).regex(/^[^#+]+$/, 'no MQTT wildcards').default('edge-classifier'),
    client_id: z.string().min(1).optional().describe('default: edge-classifier-<device_id>'),
    username: z.string().optional(),
    password: z.string().optional().describe('prefer password_file or EDGE_CLASSIFIER__MQTT__PASSWORD'),
    password_file: z.string().min(1).optional().describe('file holding the password (e.g. a systemd credential)'),
    tls: z
      .object({
        ca: z.string().min(1).optional().describe('CA certificate file (PEM) to verify the broker'),
        cert: z.string().min(1).optional().describe('client certificate file (PEM)'),
        key: z.string().min(1).optional().describe('client private key file (PEM)'),
        reject_unauthorized: z.boolean().default(true),
      })
      .strict()
      .optional()
      .describe('used with mqtts:// or wss://'),
    protocol_version: z
      .union([z.literal(4), z.literal(5)])
      .optional()
      .describe('5 (MQTT v5: message expiry, content type) for external brokers, 4 (3.1.1) for the embedded one'),
    reconnect_max_ms: z.number().int().min(500).default(30_000).describe('reconnect backoff cap (starts at 1 s, with jitter)'),
    qos: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(1),
    keepalive: z.number().int().min(5).max(3600).default(30),
    queue: z
      .object({
        max_messages: z
          .number()
          .int()
          .min(1)
          .default(10_000)
          .describe('QoS 1 predictions and label events held while the broker is unreachable; beyond it the oldest predictions are dropped first (counted in stats)'),
        disk: z.boolean().default(false).describe('also keep the queue in state_dir/mqtt-queue.log, so a daemon restart loses nothing'),
        disk_max_bytes: z.number().int().min(65_536).default(64 * 1024 * 1024),
        fsync: z.enum(['always', 'interval']).default('interval').describe('interval: fdatasync at most every 100 ms (kind to SD cards)'),
        drain_delay_ms: z
          .number()
          .int()
          .min(0)
          .default(1_000)
          .describe('after a reconnect, wait this long before sending the backlog, so subscribers reconnecting at the same time get it'),
      })
      .strict()
      .default(() => ({ max_messages: 10_000, disk: false, disk_max_bytes: 64 * 1024 * 1024, fsync: 'interval' as const, drain_delay_ms: 1_000 })),
    embedded: EmbeddedBrokerSchema.default(() => EmbeddedBrokerSchema.parse({})).describe('the in-process broker used when url is "embedded"'),
  })
  .strict();
export type MqttConfig = z.infer<typeof MqttSchema>;

export const OnlyOnChangeSchema = z
  .object({
    hysteresis: z.number().min(0).max(1).default(0.1).describe('publish when the top-1 score moves by more than this'),
    heartbeat: z.number().positive().default(60).describe('seconds: publish at least this often anyway'),
  })
  .strict();

/** Publish fields without defaults: the runtime `set` command patches with these. */
export const PublishFields = {
  top_k: z.number().int().min(1).max(100),
  min_score: z.number().min(0).max(1).describe('labels below this score are left out of "top"'),
  only_on_change: z
    .union([z.literal(false), OnlyOnChangeSchema])
    .describe('false: every frame; otherwise on top-1 change, score move beyond hysteresis, or heartbeat'),
};

export const PublishSchema = z
  .object({
    top_k: PublishFields.top_k.default(5),
    min_score: PublishFields.min_score.default(0),
    only_on_change: PublishFields.only_on_change.default(false),
    expiry: z.number().int().min(0).default(0).describe('MQTT v5 message expiry of predictions, seconds; 0: none'),
  })
  .strict();
export type PublishConfig = z.infer<typeof PublishSchema>;

export const WatchSchema = z
  .object({
    label: z.string().min(1).describe('exactly as in the labels file, e.g. "tabby, tabby cat"'),
    name: z.string().min(1).optional().describe('topic segment / entity name; default: slug of the label'),
    min_score: z.number().min(0).max(1).default(0.5).describe("ON while the label's score is at least this"),
    frames: z.number().int().min(1).max(1000).default(3).describe('consecutive frames to switch ON, and OFF'),
    cameras: z.array(slug).min(1).optional().describe('default: every camera'),
  })
  .strict();

/** A label watch rule as configured (defaults applied); src/rules/label-watch.ts binds it to the labels. */
export type WatchRule = z.infer<typeof WatchSchema>;

export const HomeAssistantSchema = z
  .object({
    enabled: z.boolean().default(false),
    discovery_prefix: z.string().min(1).default('homeassistant'),
    birth_topic: z.string().min(1).default('homeassistant/status'),
  })
  .strict();
