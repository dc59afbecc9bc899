import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MqttPublisher } from '../../src/mqtt/mqtt-publisher.js';
import { MqttSchema, type MqttConfig } from '../../src/config/mqtt-schema.js';
import { createLogger } from '../../src/core/logger.js';
import { createSystemClock } from '../../src/core/clock.js';
import type { CameraStatusPayload, PredictionPayload } from '../../src/mqtt/payloads.js';
import { Mosquitto } from '../helpers/mosquitto.js';
import { MqttCollector, type Received } from '../helpers/mqtt-collector.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { tempDir } from '../helpers/fixtures.js';

// MqttPublisher in process against a real mosquitto, observed by real MQTT.js subscribers.
// Outages come two ways: a TcpProxy between the publisher and the broker cut (the broker stays
// up, sees a dead client, publishes its will; subscribers stay connected), or the broker
// restarted (persistence off: its retained messages are lost, which the publisher must repair).

const BASE = 'pubtest';
const clock = createSystemClock();

interface Made {
  pub: MqttPublisher;
  logs: Record<string, unknown>[];
  root: string;
}

const started: MqttPublisher[] = [];

function makePublisher(url: string, device: string, mqtt: Partial<MqttConfig> = {}): Made {
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'debug', stream: { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) } });
  const config = MqttSchema.parse({ url, base_topic: BASE, reconnect_max_ms: 1000, ...mqtt });
  const pub = new MqttPublisher({
    logger,
    clock,
    config,
    deviceId: device,
    url,
    embedded: false,
    version: '9.9.9-test',
    statusDetails: () => ({ cameras: ['cam'] }),
    predictionExpiry: () => 0,
    stateDir: tempDir('ec-pub-'),
  });
  started.push(pub);
  return { pub, logs, root: `${BASE}/${device}` };
}

function prediction(device: string, seq: number): PredictionPayload {
  return {
    v: 1, device, camera: 'cam', seq, ts: new Date().toISOString(),
    frame: { source: 'test', width: 1, height: 1 },
    model: { name: 'm', version: null, sha256: 'x' },
    top: [{ index: 0, label: 'red', score: 1 }],
    latency_ms: { preprocess: 0, inference: 0, total: 0 },
  } as unknown as PredictionPayload;
}

function cameraStatus(device: string, state: 'online' | 'offline'): CameraStatusPayload {
  return {
    v: 1, device, camera: 'cam', state, paused: false, since: new Date().toISOString(), last_error: null, ended: false, fps: 1,
    reconnects_last_hour: 0, stalls_last_hour: 0,
    frames: { captured: 1, classified: 1, dropped: 0, decode_errors: 0, capture_errors: 0, skipped_files: 0 },
  };
}

async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const states = (m: Received[], topic: string): string[] => m.filter((x) => x.topic === topic).map((x) => (x.json as { state: string }).state);
const seqs = (m: Received[], topic: string): number[] => m.filter((x) => x.topic === topic).map((x) => (x.json as { seq: number }).seq);

/** A fresh subscriber's view of what the broker retains under `root`, complete once `marker` (published after it subscribed) arrived. */
async function retainedNow(url: string, pub: MqttPublisher, root: string): Promise<Received[]> {
  const sub = await MqttCollector.connect(url, [`${root}/#`]);
  const marker = `${root}/marker/${Math.random().toString(36).slice(2)}`;
  // Retained messages are queued to the subscriber at SUBACK, so before anything published after it.
  pub.publish(marker, 'x', { qos: 1 });
  try {
    await sub.waitFor((m) => m.some((x) => x.topic === marker), 20_000, 'the marker');
    return sub.messages.filter((x) => x.retain);
  } finally {
    await sub.close();
  }
}

describe('MqttPublisher against mosquitto', () => {
  let broker: Mosquitto;
  let proxy: TcpProxy;
  const subs: MqttCollector[] = [];

  const subscribe = async (topics: string[], opts = {}): Promise<MqttCollector> => {
    const s = await MqttCollector.connect(broker.url, topics, opts);
    subs.push(s);
    return s;
  };

  beforeAll(async () => {
    broker = await Mosquitto.start();
    proxy = await TcpProxy.start(broker.port);
  });

  afterEach(async () => {
    proxy.restore();
    for (const p of started.splice(0)) await p.stop(500);
    for (const s of subs.splice(0)) await s.close();
  });

  afterAll(async () => {
    await proxy?.stop();
    await broker?.stop();
  });

  it('availability: online retained on connect, the will (offline) when the connection dies, online again, stopped on a clean stop', async () => {
    const { pub, root } = makePublisher(proxy.url, 'avail');
    const sub = await subscribe([`${root}/status`]);
    await pub.start();
    await sub.waitFor((m) => states(m, `${root}/status`).includes('online'), 20_000, 'online');
    // Retained: a subscriber that comes later still sees it.
    const late = (await retainedNow(broker.url, pub, root)).filter((x) => x.topic === `${root}/status`);
    expect(late.map((x) => (x.json as { state: string }).state)).toEqual(['online']);

    proxy.cut(); // no DISCONNECT reaches the broker: it publishes the will
    await sub.waitFor((m) => states(m, `${root}/status`).includes('offline'), 20_000, 'the last will');
    const will = sub.on(`${root}/status`).find((x) => (x.json as { state: string }).state === 'offline')!;
    expect(will.json).toMatchObject({ v: 1, state: 'offline', device: 'avail', version: '9.9.9-test' });
    await until(() => !pub.connected, 20_000, 'the publisher to notice');

    proxy.restore();
    const n = sub.messages.length;
    await sub.waitFor((m) => states(m.slice(n), `${root}/status`).includes('online'), 20_000, 'online after the outage');

    await pub.stop();
    await sub.waitFor((m) => states(m, `${root}/status`).at(-1) === 'stopped', 20_000, 'stopped');
    expect(states(sub.messages, `${root}/status`)).toEqual(['online', 'offline', 'online', 'stopped']);
    // A clean stop sends DISCONNECT: the broker keeps `stopped`, it does not publish the will.
    const after = await subscribe([`${root}/status`]);
    await after.waitFor((m) => m.length > 0, 20_000, 'the retained status');
    expect(states(after.messages, `${root}/status`)).toEqual(['stopped']);
  });

  it('retained state lost by a broker restart is published again on reconnect', async () => {
    const { pub, root } = makePublisher(broker.url, 'restart');
    await pub.start();
    await until(() => pub.connected, 20_000, 'connected');
    pub.publishCameraStatus(cameraStatus('restart', 'online'));
    pub.retain(`${root}/custom`, '{"a":1}');
    const before = await retainedNow(broker.url, pub, root);
    expect(before.map((x) => x.topic).sort()).toEqual([`${root}/cam/status`, `${root}/custom`, `${root}/status`]);

    await broker.stop();
    await until(() => !pub.connected, 20_000, 'the publisher to notice');
    await broker.restart(); // persistence false: it remembers nothing
    await until(() => pub.connected, 30_000, 'reconnected');
    const after = await retainedNow(broker.url, pub, root);
    expect(after.map((x) => x.topic).sort()).toEqual([`${root}/cam/status`, `${root}/custom`, `${root}/status`]);
    expect(after.find((x) => x.topic === `${root}/cam/status`)?.json).toMatchObject({ camera: 'cam', state: 'online' });
    expect(after.find((x) => x.topic === `${root}/custom`)?.payload).toBe('{"a":1}');
  });

  /** A publisher at `qos` through the proxy, prediction 1 delivered, then the proxy cut. */
  async function intoOutage(qos: 0 | 1): Promise<{ pub: MqttPublisher; sub: MqttCollector; topic: string }> {
    const device = `qos${qos}`;
    const { pub, root } = makePublisher(proxy.url, device, { qos });
    const topic = `${root}/cam/prediction`;
    const sub = await subscribe([topic]);
    await pub.start();
    await until(() => pub.connected, 20_000, 'connected');
    pub.publishPrediction(prediction(device, 1));
    await sub.waitFor((m) => seqs(m, topic).includes(1), 20_000, 'prediction 1');
    proxy.cut();
    await until(() => !pub.connected, 20_000, 'the publisher to notice');
    return { pub, sub, topic };
  }

  it('QoS 1 predictions published during an outage wait in the outbox and arrive after it, in order, once each', async () => {
    const { pub, sub, topic } = await intoOutage(1);
    for (let seq = 2; seq <= 101; seq++) pub.publishPrediction(prediction('qos1', seq));
    expect(pub.queued).toBe(100);
    expect(seqs(sub.messages, topic)).toEqual([1]);

    proxy.restore();
    await sub.waitFor((m) => seqs(m, topic).includes(101), 30_000, 'the backlog');
    pub.publishPrediction(prediction('qos1', 102));
    await sub.waitFor((m) => seqs(m, topic).includes(102), 20_000, 'prediction 102');
    expect(seqs(sub.messages, topic)).toEqual(Array.from({ length: 102 }, (_, i) => i + 1));
    await until(() => pub.queued === 0, 20_000, 'the outbox to empty');
    expect(pub.droppedOffline).toBe(0);
  });

  it('QoS 0 predictions are dropped and counted while disconnected, never sent later', async () => {
    const { pub, sub, topic } = await intoOutage(0);
    for (let seq = 2; seq <= 6; seq++) pub.publishPrediction(prediction('qos0', seq));
    expect(pub.droppedOffline).toBe(5);
    expect(pub.queued).toBe(0);

    proxy.restore();
    await until(() => pub.connected, 30_000, 'reconnected');
    pub.publishPrediction(prediction('qos0', 7));
    await sub.waitFor((m) => seqs(m, topic).includes(7), 20_000, 'prediction 7');
    expect(seqs(sub.messages, topic)).toEqual([1, 7]);
    expect(pub.droppedOffline).toBe(5);
  });

  it('MQTT v5: JSON goes out with content type application/json (status, retained state, queued predictions)', async () => {
    const { pub, root } = makePublisher(broker.url, 'v5', { protocol_version: 5 });
    const sub = await subscribe([`${root}/#`], { protocolVersion: 5 });
    await pub.start();
    await until(() => pub.connected, 20_000, 'connected');
    pub.publishCameraStatus(cameraStatus('v5', 'online'));
    pub.publishPrediction(prediction('v5', 1));
    await sub.waitFor((m) => ['status', 'cam/status', 'cam/prediction'].every((t) => m.some((x) => x.topic === `${root}/${t}`)), 20_000, 'three topics');
    for (const t of ['status', 'cam/status', 'cam/prediction']) {
      expect(sub.on(`${root}/${t}`)[0]?.properties?.contentType, t).toBe('application/json');
    }
  });

  it('MQTT 3.1.1 carries no properties (the content type is v5 only)', async () => {
    const { pub, root } = makePublisher(broker.url, 'v4', { protocol_version: 4 });
    const sub = await subscribe([`${root}/#`], { protocolVersion: 5 });
    await pub.start();
    pub.publishPrediction(prediction('v4', 1));
    await sub.waitFor((m) => m.some((x) => x.topic === `${root}/cam/prediction`), 20_000, 'the prediction');
    expect(sub.on(`${root}/cam/prediction`)[0]?.properties?.contentType).toBeUndefined();
  });

  it('forgetCamera deletes the camera status and its label states from the broker', async () => {
    const { pub, root } = makePublisher(broker.url, 'forget');
    const sub = await subscribe([`${root}/#`]);
    await pub.start();
    await until(() => pub.connected, 20_000, 'connected');
    pub.publishCameraStatus(cameraStatus('forget', 'online'));
    pub.publishLabelEvent({ camera: 'cam', slug: 'cat', label: 'cat', state: 'ON', score: 0.9 });
    pub.publishLabelEvent({ camera: 'cam', slug: 'dog', label: 'dog', state: 'OFF', score: 0.1 });
    pub.publishCameraStatus({ ...cameraStatus('forget', 'online'), camera: 'other' });
    const topics = [`${root}/cam/status`, `${root}/cam/label/cat`, `${root}/cam/label/dog`];
    await sub.waitFor((m) => topics.every((t) => m.some((x) => x.topic === t)), 20_000, 'the retained state');
    expect((await retainedNow(broker.url, pub, root)).map((x) => x.topic)).toEqual(expect.arrayContaining([...topics, `${root}/other/status`]));

    pub.forgetCamera('cam', ['cat', 'dog']);
    await sub.waitFor((m) => topics.every((t) => m.some((x) => x.topic === t && x.payload === '')), 20_000, 'the empty retained payloads');
    const left = (await retainedNow(broker.url, pub, root)).map((x) => x.topic).sort();
    expect(left).toEqual([`${root}/other/status`, `${root}/status`]);
    // Not republished on a reconnect either.
    pub.republish();
    expect((await retainedNow(broker.url, pub, root)).map((x) => x.topic).sort()).toEqual([`${root}/other/status`, `${root}/status`]);
  });
});

describe('MqttPublisher with a broker ACL', () => {
  let broker: Mosquitto;

  beforeAll(async () => {
    // Anonymous clients may subscribe under B/acl/ only (mosquitto's acl_file cannot refuse a
    // SUBSCRIBE: it grants all and filters on delivery; the dynamic security plugin refuses).
    broker = await Mosquitto.start({
      dynamicSecurity: {
        defaultACLAccess: { publishClientSend: true, publishClientReceive: true, subscribe: false, unsubscribe: true },
        clients: [],
        groups: [{ groupname: 'anonymous', roles: [{ rolename: 'device' }] }],
        anonymousGroup: 'anonymous',
        roles: [{ rolename: 'device', acls: [{ acltype: 'subscribePattern', topic: `${BASE}/acl/#`, allow: true }] }],
      },
    });
  });

  afterEach(async () => {
    for (const p of started.splice(0)) await p.stop(500);
  });

  afterAll(async () => {
    await broker?.stop();
  });

  it.each([5, 4] as const)('MQTT %i: a subscribe the broker refuses is logged as an error; an allowed one works and is not', async (version) => {
    const { pub, logs, root } = makePublisher(broker.url, 'acl', { protocol_version: version });
    await pub.start();
    await until(() => pub.connected, 20_000, 'connected');
    const got: string[] = [];
    pub.subscribe(`${root}/request/#`, (topic) => got.push(topic));
    pub.subscribe('forbidden/#', (topic) => got.push(topic));
    const refused = (): Record<string, unknown>[] => logs.filter((l) => l.msg === 'MQTT subscribe refused by the broker (ACL?)');
    await until(() => refused().length > 0, 20_000, 'the refusal in the log');
    expect(refused().map((l) => ({ filter: l.filter, level: l.level }))).toEqual([{ filter: 'forbidden/#', level: 50 }]);
    expect(refused()[0]!.code).toBe(version === 5 ? 0x87 : 0x80); // not authorized; 3.1.1's only failure code
    // The allowed subscription does work (published until its SUBACK has surely come).
    await until(() => {
      pub.publish(`${root}/request/ping`, 'x', { qos: 0 });
      return got.length > 0;
    }, 20_000, 'a message on the allowed subscription');
    expect(got[0]).toBe(`${root}/request/ping`);
  });
});
