import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/fixtures.js';
import { waitForLog } from '../helpers/cli.js';
import { MqttCollector } from '../helpers/mqtt-collector.js';
import { Requester } from '../helpers/mqtt-request.js';
import type { Logger } from '../../src/core/logger.js';
import { EmbeddedBroker } from '../../src/mqtt/embedded-broker.js';
import { floodPublish, idleSocket, mqttClient, peakRssDuring, rssMb, startBrokerDaemon, type BrokerDaemon } from '../helpers/broker-flood.js';

// Issue 12, point 2: the embedded broker runs inside the daemon, so a client that makes it
// hold bytes grows the daemon. The real daemon (built CLI), attacked over real TCP: raw
// sockets announcing 200 MB packets, 500 retained 1 MB messages, forged status, impostors,
// anonymous clients, too many connections. RSS is read from /proc/<daemon pid>/status.

const MB = 1_000_000;
const MiB = 1024 * 1024;

describe('embedded broker, open (no username)', () => {
  let d: BrokerDaemon;

  beforeAll(async () => {
    // 2 MiB packets, so 1 MB retained messages get through to the retained cap (defaults otherwise).
    d = await startBrokerDaemon(tempDir('ec-broker-'), 'brk', { max_packet_bytes: 2 * MiB });
  }, 90_000);
  afterAll(() => {
    d?.daemon.proc.kill('SIGKILL');
  });

  it('closes each of 4 connections announcing a 200 MB PUBLISH at its header; RSS grows by far less than offered', async () => {
    const before = rssMb(d.pid);
    const { result, peakMb } = await peakRssDuring(d.pid, () =>
      Promise.all([1, 2, 3, 4].map((i) => floodPublish(d.port, 200 * MB, `flood-${i}`))),
    );
    for (const r of result) {
      expect(r.closedMs, 'closed by the broker').toBeDefined();
      expect(r.closedMs!).toBeLessThan(5_000);
      // What the socket took before the close: kernel buffers, not 200 MB.
      expect(r.sent).toBeLessThan(32 * MB);
    }
    console.log(`flood: RSS ${before.toFixed(0)} MB before, peak ${peakMb.toFixed(0)} MB; 800 MB announced, ${(result.reduce((s, r) => s + r.sent, 0) / MB).toFixed(1)} MB taken`);
    expect(peakMb - before).toBeLessThan(100);
    await waitForLog(d.daemon, (l) => l.msg === 'MQTT connection closed: packet over mqtt.embedded.max_packet_bytes');
    expect(d.daemon.proc.exitCode).toBeNull();
  });

  it('keeps 16 MiB of 500 retained 1 MB messages and passes the rest on unretained; RSS stays bounded', async () => {
    const before = rssMb(d.pid);
    const live = await MqttCollector.connect(`mqtt://127.0.0.1:${d.port}`, ['junk/#']);
    const { peakMb } = await peakRssDuring(d.pid, async () => {
      const client = await mqttClient(d.port);
      const payload = Buffer.alloc(MB, 0x62);
      for (let i = 0; i < 500; i++) await client.publishAsync(`junk/${i}`, payload, { qos: 1, retain: true });
      await client.endAsync();
    });
    // Every one reached the live subscriber: passed on, just not all kept.
    await live.waitFor((m) => m.length >= 500, 60_000, '500 live messages');
    await live.close();
    const late = await MqttCollector.connect(`mqtt://127.0.0.1:${d.port}`, ['junk/#']);
    await new Promise((r) => setTimeout(r, 2_000));
    await late.close();
    const kept = Math.floor((16 * MiB) / MB);
    expect(late.messages.filter((m) => m.retain).length).toBe(kept);
    console.log(`retained: RSS ${before.toFixed(0)} MB before, peak ${peakMb.toFixed(0)} MB; 500 MB offered, ${kept} kept`);
    expect(peakMb - before).toBeLessThan(150);
    // A held one can still be cleared, and then a new topic fits in its place.
    const client = await mqttClient(d.port);
    await client.publishAsync('junk/0', '', { qos: 1, retain: true });
    await client.publishAsync('junk/new', Buffer.alloc(MB), { qos: 1, retain: true });
    await client.endAsync();
    const after = await MqttCollector.connect(`mqtt://127.0.0.1:${d.port}`, ['junk/0', 'junk/new']);
    await after.waitFor((m) => m.length >= 1, 5_000, 'junk/new retained');
    await new Promise((r) => setTimeout(r, 500));
    await after.close();
    expect(after.messages.map((m) => m.topic)).toEqual(['junk/new']);
  }, 180_000);

  it("refuses a foreign publish to the daemon's status and an impostor with its client id; subscribers still see the daemon's status", async () => {
    const status = `${d.root}/status`;
    const watcher = await MqttCollector.connect(`mqtt://127.0.0.1:${d.port}`, [status]);
    await watcher.waitFor((m) => m.length >= 1, 10_000, 'retained status');
    const forger = await mqttClient(d.port);
    const forgerClosed = new Promise<void>((resolve) => forger.once('close', () => resolve()));
    forger.publish(status, JSON.stringify({ state: 'hacked' }), { qos: 1, retain: true });
    await forgerClosed;
    forger.end(true);
    // The daemon's client id, without its internal credentials: refused (it would take over the session).
    await expect(mqttClient(d.port, { clientId: 'edge-classifier-brk' })).rejects.toThrow(/Identifier rejected/i);
    await new Promise((r) => setTimeout(r, 1_000));
    const fresh = await MqttCollector.connect(`mqtt://127.0.0.1:${d.port}`, [status]);
    await fresh.waitFor((m) => m.length >= 1, 10_000, 'retained status');
    await fresh.close();
    await watcher.close();
    expect(fresh.messages[0]!.json).toMatchObject({ state: 'online' });
    // Nothing forged reached the live watcher, and the daemon never went offline.
    expect(watcher.messages.map((m) => (m.json as { state: string }).state)).toEqual(['online']);
    await waitForLog(d.daemon, (l) => l.msg === "MQTT publish to the daemon's own topic refused" && l.topic === status);
  });

  it('passes foreign publishes to the request topics to the daemon only: a command gets its response, a `#` subscriber never sees it', async () => {
    const url = `mqtt://127.0.0.1:${d.port}`;
    const snoop = await MqttCollector.connect(url, ['#']);
    const req = await Requester.connect(url, d.root);
    // The secret is wrong on purpose: what matters is whether anyone but the daemon reads it.
    const answer = await req.send('classify', { camera: 'cam1', secret: 'would-be-secret-1234567890' });
    await req.close();
    expect(answer.status, JSON.stringify(answer)).toBe('ok');
    await snoop.waitFor((m) => m.some((x) => x.topic === `${d.root}/response/classify`), 10_000, 'the response');
    await snoop.close();
    expect(snoop.messages.filter((m) => m.topic.startsWith(`${d.root}/request/`))).toEqual([]);
    expect(snoop.messages.some((m) => m.payload.includes('would-be-secret'))).toBe(false);
  });
});

describe('embedded broker with a username, few connections and a short connect timeout', () => {
  let d: BrokerDaemon;
  const dir = tempDir('ec-broker-auth-');

  beforeAll(async () => {
    const passwordFile = join(dir, 'broker-password');
    writeFileSync(passwordFile, 'correct horse\n');
    d = await startBrokerDaemon(dir, 'auth', { username: 'ha', password_file: passwordFile, max_connections: 6, connect_timeout_ms: 2_000 });
  }, 90_000);
  afterAll(() => {
    d?.daemon.proc.kill('SIGKILL');
  });

  it('refuses anonymous clients and a wrong password, accepts the right one, which sees the daemon', async () => {
    await expect(mqttClient(d.port)).rejects.toThrow(/Not authorized/i);
    await expect(mqttClient(d.port, { username: 'ha', password: 'wrong' })).rejects.toThrow(/Bad username or password/i);
    await expect(mqttClient(d.port, { username: 'hb', password: 'correct horse' })).rejects.toThrow(/Bad username or password/i);
    const sub = await mqttClient(d.port, { username: 'ha', password: 'correct horse' });
    const status = new Promise<string>((resolve) => sub.once('message', (_t, payload) => resolve(payload.toString())));
    await sub.subscribeAsync(`${d.root}/status`);
    expect(JSON.parse(await status)).toMatchObject({ state: 'online' });
    await sub.endAsync();
  });

  it('refuses connections beyond max_connections at TCP, logs it once, and closes idle ones at connect_timeout_ms', async () => {
    // The daemon's own client holds one of the 6.
    const idle = await Promise.all([1, 2, 3, 4, 5].map(() => idleSocket(d.port)));
    await new Promise((r) => setTimeout(r, 200));
    const refused = await Promise.all([1, 2, 3].map(() => idleSocket(d.port)));
    // Closed by the broker at once, without a byte; the first five still open.
    const fast = await Promise.all(refused.map((r) => r.closed));
    for (const ms of fast) expect(ms).toBeLessThan(1_000);
    await waitForLog(d.daemon, (l) => l.msg === 'MQTT connection refused: mqtt.embedded.max_connections reached');
    expect(d.daemon.logs().filter((l) => l.msg === 'MQTT connection refused: mqtt.embedded.max_connections reached')).toHaveLength(1);
    // None of them sent CONNECT: closed after the 2 s timeout.
    const slow = await Promise.all(idle.map((i) => i.closed));
    for (const ms of slow) {
      expect(ms).toBeGreaterThan(1_500);
      expect(ms).toBeLessThan(10_000);
    }
    // Room again.
    const ok = await mqttClient(d.port, { username: 'ha', password: 'correct horse' });
    await ok.endAsync();
  });
});

describe('embedded broker in process', () => {
  /** Collects warn lines; the rest is dropped. */
  function warnings(): { logger: Logger; lines: string[] } {
    const lines: string[] = [];
    const logger = { warn: (_f: unknown, msg: string) => lines.push(msg), info: () => {}, debug: () => {} } as unknown as Logger;
    return { logger, lines };
  }

  it('warns at start when it listens beyond loopback, saying what that exposes; not on loopback', async () => {
    for (const [host, expected] of [['0.0.0.0', /beyond loopback WITHOUT authentication: .*reads every prediction and snapshot.*mqtt\.embedded\.username/], ['127.0.0.1', undefined]] as const) {
      const { logger, lines } = warnings();
      const broker = new EmbeddedBroker({ logger, config: { host, port: 0 } });
      await broker.start();
      await broker.stop();
      if (expected) expect(lines).toEqual([expect.stringMatching(expected)]);
      else expect(lines).toEqual([]);
    }
  });

  it("lets the daemon's own client (internal credentials) publish a 1 MB snapshot, but not others at the default 256 KiB", async () => {
    const { logger } = warnings();
    const broker = new EmbeddedBroker({ logger, config: { host: '127.0.0.1', port: 0 }, owner: { baseTopic: 'b', deviceId: 'd', discoveryPrefix: 'homeassistant' } });
    await broker.start();
    try {
      const sub = await mqttClient(broker.port);
      const got: { topic: string; bytes: number }[] = [];
      sub.on('message', (topic, payload) => got.push({ topic, bytes: payload.length }));
      await sub.subscribeAsync('#');
      const own = await mqttClient(broker.port, { ...broker.credentials, clientId: 'edge-classifier-d' });
      await own.publishAsync('b/d/cam/snapshot', Buffer.alloc(MB), { qos: 1 });
      const other = await mqttClient(broker.port);
      const closed = new Promise<void>((resolve) => other.once('close', () => resolve()));
      other.publish('elsewhere', Buffer.alloc(300 * 1024), { qos: 1 });
      await closed;
      other.end(true);
      await new Promise((r) => setTimeout(r, 300));
      expect(got).toEqual([{ topic: 'b/d/cam/snapshot', bytes: MB }]);
      await own.endAsync();
      await sub.endAsync();
    } finally {
      await broker.stop();
    }
  });
});
