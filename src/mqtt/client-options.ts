import { readFileSync } from 'node:fs';
import type { IClientOptions } from 'mqtt';
import type { MqttConfig } from '../config/schema.js';
import { ConfigError } from '../config/config-error.js';

/** Reads a secret or certificate file; one it cannot read is a configuration error (exit 78) naming the key. */
function readConfigFile(key: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError('config', [`mqtt.${key}: cannot read ${path}: ${(err as Error).message}`]);
  }
}

/** MQTT.js options from the config: identity, auth, TLS, protocol version. */
export function clientOptions(config: MqttConfig, deviceId: string, embedded: boolean): IClientOptions {
  const password = config.password_file
    ? readConfigFile('password_file', config.password_file).toString('utf8').trim()
    : config.password;
  const tls = config.tls;
  return {
    clientId: config.client_id ?? `edge-classifier-${deviceId}`,
    keepalive: config.keepalive,
    connectTimeout: 10_000,
    clean: true,
    // aedes (the embedded broker) speaks MQTT 3.1.1 only.
    protocolVersion: config.protocol_version ?? (embedded ? 4 : 5),
    // Offline messages are the outbox's business, not MQTT.js's unbounded queue.
    queueQoSZero: false,
    ...(config.username !== undefined ? { username: config.username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(tls
      ? {
          ...(tls.ca ? { ca: readConfigFile('tls.ca', tls.ca) } : {}),
          ...(tls.cert ? { cert: readConfigFile('tls.cert', tls.cert) } : {}),
          ...(tls.key ? { key: readConfigFile('tls.key', tls.key) } : {}),
          rejectUnauthorized: tls.reject_unauthorized,
        }
      : {}),
  };
}

/** Reconnect delay: 1 s doubling to the cap, with up to 30% jitter so a fleet does not reconnect in step. */
export function reconnectDelay(attempt: number, capMs: number, random: () => number = Math.random): number {
  const base = Math.min(capMs, 1_000 * 2 ** Math.min(attempt, 20));
  return Math.round(base * (0.7 + 0.3 * random()));
}
