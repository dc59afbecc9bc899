import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectAsync, type IClientOptions, type MqttClient } from 'mqtt';
import { Mosquitto } from '../helpers/mosquitto.js';
import { generatePki, type CertFiles, type TestPki } from '../helpers/certs.js';
import { startCli, waitForLog, type Started } from '../helpers/cli.js';
import { colourImage, tempDir, writeColourModel } from '../helpers/fixtures.js';

// The daemon against a locked-down mosquitto: TLS with client certificates, a password file
// and an ACL. Everything runs on 127.0.0.1 and is started and stopped here.

const DAEMON_USER = 'ec-daemon';
const DAEMON_PASSWORD = 'daemon-Pw-7f3a9c1e';
const ADMIN_USER = 'ec-admin';
const ADMIN_PASSWORD = 'admin-Pw-0b8d2e64';

interface Msg {
  topic: string;
  payload: string;
  json: unknown;
  at: number;
}

/** A subscriber with arbitrary client options (TLS, credentials): records what it receives. */
class Subscriber {
  readonly messages: Msg[] = [];

  private constructor(private readonly client: MqttClient) {
    client.on('message', (topic, payload) => {
      const text = payload.toString();
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      this.messages.push({ topic, payload: text, json, at: Date.now() });
    });
  }

  static async connect(url: string, opts: IClientOptions, topics: string[]): Promise<Subscriber> {
    const client = await connectAsync(url, { reconnectPeriod: 500, connectTimeout: 10_000, clean: true, ...opts });
    const s = new Subscriber(client);
    await client.subscribeAsync(topics, { qos: 1 });
    return s;
  }

  on(topic: string): Msg[] {
    return this.messages.filter((m) => m.topic === topic);
  }

  async waitFor(pred: (m: Msg[]) => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.messages)) {
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${what}; got ${this.messages.length}: ${[...new Set(this.messages.map((m) => m.topic))].join(', ')}`);
      }
      await sleep(50);
    }
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const tlsFiles = (pki: TestPki, client: CertFiles | undefined): IClientOptions => ({
  ca: readFileSync(pki.ca.cert),
  ...(client ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {}),
});

/** SIGTERM, expecting a clean exit; SIGKILL as a last resort so nothing outlives the test. */
async function stopDaemon(daemon: Started): Promise<number | null> {
  if (daemon.proc.exitCode !== null || daemon.proc.signalCode !== null) return daemon.proc.exitCode;
  daemon.proc.kill('SIGTERM');
  const killer = setTimeout(() => daemon.proc.kill('SIGKILL'), 15_000);
  const done = await daemon.finished;
  clearTimeout(killer);
  return done.code;
}

function expectNoSecrets(daemon: Started): void {
  const all = daemon.stdout() + daemon.stderr();
  expect(all).not.toContain(DAEMON_PASSWORD);
  expect(all).not.toContain(ADMIN_PASSWORD);
}

let dir: string;
let model: { model: string; labels: string };
let images: string;
let passwordFile: string;

/** Writes a daemon config (JSON is YAML) for one camera looping over a green image. */
function writeConfig(name: string, deviceId: string, mqtt: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
  const path = join(dir, `${name}.yaml`);
  const config = {
    device_id: deviceId,
    model: { path: model.model, labels: model.labels, execution_providers: ['cpu'] },
    cameras: [{ id: 'cam', source: { type: 'directory', path: images, fps: 4, loop: true } }],
    mqtt: { username: DAEMON_USER, password_file: passwordFile, reconnect_max_ms: 2_000, ...mqtt },
    ...extra,
  };
  writeFileSync(path, JSON.stringify(config, null, 2));
  return path;
}

beforeAll(async () => {
  dir = tempDir('ec-tls-acl-');
  model = writeColourModel(join(dir, 'model'));
  images = join(dir, 'images');
  mkdirSync(images);
  writeFileSync(join(images, 'a-green.jpg'), await colourImage('green'));
  passwordFile = join(dir, 'mqtt-password');
  writeFileSync(passwordFile, `${DAEMON_PASSWORD}\n`, { mode: 0o600 });
});

describe('TLS with client certificates (require_certificate)', () => {
  let pki: TestPki;
  let broker: Mosquitto;

  beforeAll(async () => {
    pki = generatePki({ clientCn: DAEMON_USER });
    broker = await Mosquitto.start({
      tls: { cafile: pki.ca.cert, certfile: pki.server.cert, keyfile: pki.server.key, requireCertificate: true },
      passwords: { [DAEMON_USER]: DAEMON_PASSWORD, [ADMIN_USER]: ADMIN_PASSWORD },
    });
  });

  afterAll(async () => {
    await broker?.stop();
  });

  it('connects with the CA-signed client certificate and publishes predictions over mqtts://', async () => {
    expect(broker.url).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
    const sub = await Subscriber.connect(broker.url, { ...tlsFiles(pki, pki.client), username: ADMIN_USER, password: ADMIN_PASSWORD }, ['ec-tls/#']);
    const cfg = writeConfig('tls-good', 'tls-01', {
      url: broker.url,
      base_topic: 'ec-tls',
      tls: { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key },
    });
    const daemon = startCli(['run', '--config', cfg]);
    try {
      const connected = await waitForLog(daemon, (l) => l.msg === 'MQTT connected', 30_000);
      expect(connected.url).toBe(broker.url);
      const topic = 'ec-tls/tls-01/cam/prediction';
      await sub.waitFor((m) => m.filter((x) => x.topic === topic).length >= 2, 30_000, 'predictions over TLS');
      expect((sub.on(topic)[0]?.json as { top: { label: string }[] }).top[0]?.label).toBe('green');
      expect(sub.on('ec-tls/tls-01/status').map((m) => (m.json as { state?: string }).state)).toContain('online');
      expect(daemon.logs().filter((l) => l.msg === 'MQTT error')).toEqual([]);
      expect(await stopDaemon(daemon)).toBe(0);
      await sub.waitFor((m) => m.some((x) => x.topic === 'ec-tls/tls-01/status' && (x.json as { state?: string }).state === 'stopped'), 10_000, 'stopped');
      expectNoSecrets(daemon);
    } finally {
      daemon.proc.kill('SIGKILL');
      await sub.close();
    }
  });

  // The broker refuses the handshake; with TLS 1.3 the client only learns it from the alert
  // that follows, which MQTT.js emits as a client 'error' (OpenSSL's text in `message`).
  it.each([
    { name: 'a client certificate from a different CA', client: 'wrong' as const, code: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', text: /alert unknown ca/ },
    { name: 'no client certificate', client: 'none' as const, code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', text: /alert certificate required/ },
  ])('with $name: refused, reported in the log, and the daemon keeps retrying', async ({ client, code, text }) => {
    const cert = client === 'wrong' ? pki.wrongClient : undefined;
    const cfg = writeConfig(`tls-${client}`, `tls-${client}`, {
      url: broker.url,
      base_topic: 'ec-tls',
      tls: { ca: pki.ca.cert, ...(cert ? { cert: cert.cert, key: cert.key } : {}) },
    }, { log: { level: 'debug' } });
    const daemon = startCli(['run', '--config', cfg]);
    try {
      const first = await waitForLog(daemon, (l) => l.msg === 'MQTT error', 30_000);
      expect(first.code).toBe(code);
      expect(String(first.err)).toMatch(text);
      expect(String(first.hint)).toMatch(/mqtt\.tls\.cert/);
      expect(first.level).toBe(50);
      // It retries (reconnect backoff, capped at 2 s here) instead of giving up or crashing;
      // the same failure again is logged at debug, not as a new error every attempt.
      await until(() => daemon.logs().filter((l) => l.msg === 'MQTT error (again)').length >= 2, 30_000, 'more failed attempts');
      expect(daemon.proc.exitCode).toBeNull();
      expect(daemon.logs().filter((l) => l.msg === 'MQTT error')).toHaveLength(1);
      expect(daemon.logs().every((l) => !String(l.msg).startsWith('MQTT error') || l.code === code)).toBe(true);
      expect(daemon.logs().some((l) => l.msg === 'MQTT connected')).toBe(false);
      // The pipeline carries on meanwhile (predictions are queued, then dropped beyond max_queued).
      expect(await stopDaemon(daemon)).toBe(0);
      expectNoSecrets(daemon);
    } finally {
      daemon.proc.kill('SIGKILL');
    }
  });
});

describe('password file and ACL', () => {
  let broker: Mosquitto;
  const base = 'ec-acl';
  const device = 'acl-01';
  const mine = `${base}/${device}/`;
  const predictions = `${mine}cam/prediction`;

  beforeAll(async () => {
    broker = await Mosquitto.start({
      passwords: { [DAEMON_USER]: DAEMON_PASSWORD, [ADMIN_USER]: ADMIN_PASSWORD },
      acl: `user ${DAEMON_USER}\ntopic readwrite ${mine}#\n\nuser ${ADMIN_USER}\ntopic readwrite #\n`,
      // 'Denied PUBLISH ...' lines are debug level.
      logTypes: ['all'],
    });
  });

  afterAll(async () => {
    await broker?.stop();
  });

  const admin = (): Promise<Subscriber> => Subscriber.connect(broker.url, { username: ADMIN_USER, password: ADMIN_PASSWORD }, ['#']);

  it('refuses anonymous clients', async () => {
    await expect(connectAsync(broker.url, { reconnectPeriod: 0, connectTimeout: 5_000 })).rejects.toThrow(/Not authorized|Bad username or password/i);
  });

  it('without Home Assistant discovery, everything the daemon publishes stays under base/device/', async () => {
    const sub = await admin();
    const cfg = writeConfig('acl-plain', device, { url: broker.url, base_topic: base }, { stats_interval: 1 });
    const daemon = startCli(['run', '--config', cfg]);
    try {
      await sub.waitFor((m) => m.filter((x) => x.topic === predictions).length >= 3, 30_000, 'predictions');
      await sub.waitFor((m) => m.some((x) => x.topic === `${mine}stats`), 15_000, 'stats');
      expect(await stopDaemon(daemon)).toBe(0);
      await sub.waitFor((m) => m.some((x) => x.topic === `${mine}status` && (x.json as { state?: string }).state === 'stopped'), 10_000, 'stopped');
      const outside = sub.messages.map((m) => m.topic).filter((t) => !t.startsWith(mine));
      expect(outside).toEqual([]);
      const denials = daemon.logs().filter((l) => /not authorized|refused|not visible/.test(String(l.msg)));
      expect(denials).toEqual([]);
      expect(broker.log).not.toMatch(/Denied (PUBLISH|SUBSCRIBE)/);
      expectNoSecrets(daemon);
    } finally {
      daemon.proc.kill('SIGKILL');
      await sub.close();
    }
  });

  // Discovery needs homeassistant/...: the ACL denies it. mosquitto accepts the SUBSCRIBEs
  // (granted QoS; it filters on delivery) and, for PUBLISH, answers MQTT v5 clients with
  // PUBACK "not authorized" (0x87) but MQTT 3.1.1 clients with a plain PUBACK (3.1.1 has no
  // reason codes), so only v5 lets the daemon notice.
  it.each([5, 4] as const)('with Home Assistant discovery over MQTT v%i: denied outside base/device/, predictions keep flowing', async (version) => {
    const sub = await admin();
    const cfg = writeConfig(`acl-ha-v${version}`, device, { url: broker.url, base_topic: base, protocol_version: version }, { homeassistant: { enabled: true } });
    const logBefore = broker.log.length;
    const daemon = startCli(['run', '--config', cfg]);
    try {
      await waitForLog(daemon, (l) => l.msg === 'MQTT connected', 30_000);
      // The broker denied the discovery configs...
      await until(() => /Denied PUBLISH from edge-classifier-acl-01 \([^)]*'homeassistant\//.test(broker.log.slice(logBefore)), 30_000, "mosquitto's 'Denied PUBLISH' of discovery");
      if (version === 5) {
        // ...and with v5 the daemon says so, per topic.
        const failed = await waitForLog(daemon, (l) => l.msg === 'MQTT publish not authorized (broker ACL?)', 30_000);
        expect(String(failed.topic)).toMatch(/^homeassistant\/.+\/config$/);
        expect(String(failed.err)).toMatch(/not authorized/i);
        expect(failed.code).toBe(0x87);
        expect(failed.level).toBe(40);
      }
      // In both versions the daemon notices that its discovery configs never reached the broker.
      const invisible = await waitForLog(daemon, (l) => String(l.msg).startsWith('Home Assistant discovery configs not visible'), 30_000);
      expect(invisible.level).toBe(40);
      // Predictions continue after the denial.
      const n = sub.on(predictions).length;
      await sub.waitFor((m) => m.filter((x) => x.topic === predictions).length >= n + 3, 30_000, 'predictions after the denial');
      expect(daemon.proc.exitCode).toBeNull();
      expect(daemon.logs().some((l) => l.msg === 'MQTT error')).toBe(false);
      expect(await stopDaemon(daemon)).toBe(0);
      const outside = sub.messages.map((m) => m.topic).filter((t) => !t.startsWith(mine));
      expect(outside).toEqual([]);
      expectNoSecrets(daemon);
    } finally {
      daemon.proc.kill('SIGKILL');
      await sub.close();
    }
  });
});
