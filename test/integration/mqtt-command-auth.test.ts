import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectAsync } from 'mqtt';
import sharp from 'sharp';
import { Mosquitto } from '../helpers/mosquitto.js';
import { MqttCollector } from '../helpers/mqtt-collector.js';
import { Requester } from '../helpers/mqtt-request.js';
import { startCli, waitForLog, type Started } from '../helpers/cli.js';
import { colourImage, tempDir, writeColourModel } from '../helpers/fixtures.js';

// Who may send commands (issue 12): the daemon's own checks against a real, open mosquitto,
// and a mosquitto ACL that keeps the command topics to the daemon and an operator.

const SHARED = 'shared-command-secret-5f1e';
const HA_SECRET = 'ha-command-secret-90ab7c';
const OPS_SECRET = 'ops-command-secret-3d2e41';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let dir: string;
let model: { model: string; labels: string };
let images: string;

function writeConfig(name: string, device: string, mqttUrl: string, extra: string): string {
  const p = join(dir, `${name}.yaml`);
  writeFileSync(
    p,
    `device_id: ${device}
state_dir: ${join(dir, `state-${name}`)}
model: { path: ${model.model}, labels: ${model.labels}, execution_providers: [cpu] }
cameras:
  - id: cam
    source: { type: directory, path: ${images}, fps: 5, loop: true }
http: { enabled: false }
${mqttUrl}
${extra}
`,
  );
  return p;
}

function secret(name: string, value: string): string {
  const p = join(dir, name);
  writeFileSync(p, `${value}\n`, { mode: 0o600 });
  return p;
}

async function stop(daemon: Started): Promise<void> {
  daemon.proc.kill('SIGTERM');
  const killer = setTimeout(() => daemon.proc.kill('SIGKILL'), 15_000);
  await daemon.finished;
  clearTimeout(killer);
}

beforeAll(async () => {
  dir = tempDir('ec-cmd-auth-');
  model = writeColourModel(join(dir, 'model'));
  images = join(dir, 'images');
  mkdirSync(images);
  writeFileSync(join(images, 'a-green.jpg'), await colourImage('green'));
});

describe("the daemon's own checks, on an open broker", () => {
  let broker: Mosquitto;

  beforeAll(async () => {
    broker = await Mosquitto.start();
  });
  afterAll(async () => {
    await broker?.stop();
  });

  it('by default an anonymous client may classify, but gets no image and cannot pause or change anything', async () => {
    const root = 'auth/open1';
    const cfg = writeConfig('default', 'open1', `mqtt: { url: ${broker.url}, base_topic: auth }`, '');
    const sub = await MqttCollector.connect(broker.url, [`${root}/#`]);
    const anon = await Requester.connect(broker.url, root);
    const daemon = startCli(['run', '--config', cfg]);
    try {
      await sub.waitFor((m) => m.some((x) => x.topic === `${root}/cam/prediction`), 30_000, 'predictions');
      expect(await anon.send('classify', { camera: 'cam' })).toMatchObject({ status: 'ok', data: { camera: 'cam' } });
      for (const [command, params] of [['pause', { camera: 'cam' }], ['snapshot', { camera: 'cam' }], ['set', { top_k: 1 }], ['update-check', {}]] as const) {
        const r = await anon.send(command, params);
        expect(r, command).toMatchObject({ status: 'error', data: null, error: expect.stringMatching(/^not authorised: control commands need a secret, and none is configured/) });
      }
      // A secret does not help when none is configured.
      expect((await anon.send('pause', { camera: 'cam', secret: SHARED })).status).toBe('error');
      await sleep(1_000);
      expect(sub.on(`${root}/cam/snapshot`)).toEqual([]);
      expect(sub.on(`${root}/cam/status`).map((m) => (m.json as { paused: boolean }).paused)).not.toContain(true);
      const refused = daemon.logs().filter((l) => l.msg === 'command refused');
      // Rate-limited: one line for the burst, not one per request.
      expect(refused).toHaveLength(1);
      expect(daemon.logs().some((l) => l.msg === 'control commands will not run until commands.secret_file or commands.clients is set')).toBe(true);
    } finally {
      await stop(daemon);
      await anon.close();
      await sub.close();
    }
  });

  it('with a shared secret and named clients, only the right secret for the right class gets through', async () => {
    const root = 'auth/open2';
    const cfg = writeConfig(
      'secrets',
      'open2',
      `mqtt: { url: ${broker.url}, base_topic: auth, protocol_version: 5 }`,
      `commands:
  secret_file: ${secret('shared', SHARED)}
  clients:
    - { name: ha, secret_file: ${secret('ha', HA_SECRET)}, allow: [read] }
    - { name: ops, secret_file: ${secret('ops', OPS_SECRET)} }`,
    );
    const sub = await MqttCollector.connect(broker.url, [`${root}/#`, 'ops/replies']);
    const anon = await Requester.connect(broker.url, root, { mqtt: { protocolVersion: 5 } });
    const ha = await Requester.connect(broker.url, root, { client: 'ha', secret: HA_SECRET });
    const ops = await Requester.connect(broker.url, root, { client: 'ops', secret: OPS_SECRET, mqtt: { protocolVersion: 5 } });
    const daemon = startCli(['run', '--config', cfg]);
    try {
      await sub.waitFor((m) => m.some((x) => x.topic === `${root}/cam/prediction`), 30_000, 'predictions');
      expect((await anon.send('pause', { camera: 'cam' })).error).toBe('not authorised: control commands need "secret"');
      expect((await anon.send('pause', { camera: 'cam', secret: 'shared-command-secret-WRONG' })).error).toBe('not authorised: wrong secret');
      expect((await anon.send('pause', { camera: 'cam', client: 'ops', secret: HA_SECRET })).error).toBe('not authorised: unknown client or wrong secret');

      // The shared secret as a JSON field...
      expect(await anon.send('pause', { camera: 'cam', secret: SHARED })).toMatchObject({ status: 'ok', data: { paused: true } });
      await sub.waitFor((m) => m.some((x) => x.topic === `${root}/cam/status` && (x.json as { paused?: boolean }).paused === true), 10_000, 'paused');
      // ...and as an MQTT v5 user property.
      const resumed = await anon.sendRaw('resume', '{"transaction":"v5","camera":"cam"}', 'v5', 15_000, { properties: { userProperties: { secret: SHARED } } });
      expect(resumed).toMatchObject({ status: 'ok', data: { paused: false } });

      // A named client may use only its classes.
      expect((await ha.send('snapshot', { camera: 'cam' })).error).toBe('not authorised: client "ha" may not use control commands');
      expect((await ha.send('classify', { camera: 'cam' })).status).toBe('ok');
      expect(sub.on(`${root}/cam/snapshot`)).toEqual([]);
      const snap = await ops.send('snapshot', { camera: 'cam' });
      expect(snap.status).toBe('ok');
      await sub.waitFor((m) => m.some((x) => x.topic === `${root}/cam/snapshot`), 10_000, 'snapshot');
      expect((await sharp(sub.on(`${root}/cam/snapshot`)[0]!.raw).metadata()).format).toBe('jpeg');

      // MQTT v5 request/response: the answer also goes to the response topic, with the correlation data.
      const correlationData = Buffer.from('corr-42');
      const raw = await connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 });
      const got = new Promise<{ body: string; correlation: string | undefined }>((resolve) =>
        raw.on('message', (_t, payload, packet) => resolve({ body: payload.toString(), correlation: packet.properties?.correlationData?.toString() })),
      );
      await raw.subscribeAsync('ops/replies/1', { qos: 1 });
      await raw.publishAsync(`${root}/request/classify`, '{"camera":"cam"}', { qos: 1, properties: { responseTopic: 'ops/replies/1', correlationData, userProperties: { client: 'ops', secret: OPS_SECRET } } });
      const reply = await got;
      expect(reply.correlation).toBe('corr-42');
      expect(JSON.parse(reply.body)).toMatchObject({ status: 'ok', data: { camera: 'cam' } });
      await raw.endAsync(true);

      const audit = daemon.logs().filter((l) => l.msg === 'control command');
      expect(audit.map((l) => [l.command, l.client])).toEqual([['pause', null], ['resume', null], ['snapshot', 'ops']]);
      for (const s of [SHARED, HA_SECRET, OPS_SECRET]) expect(daemon.stdout() + daemon.stderr()).not.toContain(s);
    } finally {
      await stop(daemon);
      for (const c of [anon, ha, ops, sub]) await c.close();
    }
  });
});

describe('a mosquitto ACL keeps the command topics to the daemon and the operator', () => {
  const root = 'acl/cam1';
  const users = { 'ec-daemon': 'daemon-pw-1a2b3c4d', operator: 'operator-pw-5e6f7a8b', guest: 'guest-pw-9c0d1e2f' };
  let broker: Mosquitto;

  beforeAll(async () => {
    // The lines docs/mqtt.md#security recommends, for base topic "acl" and device "cam1".
    broker = await Mosquitto.start({
      passwords: users,
      logTypes: ['all'],
      acl: [
        'user ec-daemon',
        'topic readwrite acl/cam1/#',
        'user operator',
        'topic write acl/cam1/request/#',
        'topic read acl/cam1/#',
        'pattern read acl/cam1/status',
        'pattern read acl/cam1/+/prediction',
        'pattern read acl/cam1/+/status',
        'pattern read acl/cam1/+/label/#',
      ].join('\n'),
    });
  });
  afterAll(async () => {
    await broker?.stop();
  });

  it("a guest's requests are denied by the broker and it sees neither requests nor images; the operator's work", async () => {
    const pw = secret('daemon-mqtt-pw', users['ec-daemon']);
    const cfg = writeConfig(
      'acl',
      'cam1',
      `mqtt: { url: ${broker.url}, base_topic: acl, username: ec-daemon, password_file: ${pw}, protocol_version: 5 }`,
      // The broker enforces who may publish requests, so the daemon's own check is open.
      'commands: { control: open }',
    );
    const guestSees = await MqttCollector.connect(broker.url, ['acl/#'], { username: 'guest', password: users.guest });
    const operator = await Requester.connect(broker.url, root, { mqtt: { username: 'operator', password: users.operator, protocolVersion: 5 } });
    const daemon = startCli(['run', '--config', cfg]);
    try {
      await waitForLog(daemon, (l) => l.msg === 'MQTT connected', 30_000);
      await guestSees.waitFor((m) => m.some((x) => x.topic === `${root}/cam/prediction`), 30_000, 'predictions reach the guest');

      const guest = await connectAsync(broker.url, { username: 'guest', password: users.guest, protocolVersion: 5, reconnectPeriod: 0 });
      // MQTT v5 lets mosquitto say so: PUBACK "not authorized" (0x87).
      await expect(guest.publishAsync(`${root}/request/pause`, '{"camera":"cam"}', { qos: 1 })).rejects.toThrow(/not authorized/i);
      await guest.endAsync(true);
      expect(broker.log).toMatch(/Denied PUBLISH from [^\n]*'acl\/cam1\/request\/pause'/);

      expect(await operator.send('snapshot', { camera: 'cam' })).toMatchObject({ status: 'ok' });
      expect(await operator.send('pause', { camera: 'cam' })).toMatchObject({ status: 'ok', data: { paused: true } });
      expect(await operator.send('resume', { camera: 'cam' })).toMatchObject({ status: 'ok' });
      await sleep(1_000);
      const seen = new Set(guestSees.messages.map((m) => m.topic));
      expect([...seen].filter((t) => /\/(request|response|snapshot)(\/|$)/.test(t))).toEqual([]);
      expect(seen.has(`${root}/cam/prediction`)).toBe(true);
      // Only the operator's three requests ran; the guest's never reached the daemon.
      expect(daemon.logs().filter((l) => l.msg === 'control command').map((l) => l.command)).toEqual(['snapshot', 'pause', 'resume']);
    } finally {
      await stop(daemon);
      await operator.close();
      await guestSees.close();
    }
  });
});
