import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { Mosquitto } from '../helpers/mosquitto.js';
import { MqttCollector, type Received } from '../helpers/mqtt-collector.js';
import { Requester } from '../helpers/mqtt-request.js';
import { startCli, type Started } from '../helpers/cli.js';
import { colourImage, tempDir, writeColourModel } from '../helpers/fixtures.js';
import { schemaErrors } from '../helpers/schemas.js';

// The MQTT contract as a subscriber sees it, against a real mosquitto: Home Assistant
// discovery, label events, change-only publishing, stats and request/response commands.

const ROOT = 'mc/dev1';
// Control commands (snapshot, set, pause) need a secret by default (docs/mqtt.md#security).
const SECRET = 'contract-test-secret-0123456789';

interface Prediction {
  camera: string;
  seq: number;
  top: { label: string; score: number }[];
}

const json = <T>(m: Received | undefined): T => m?.json as T;

describe('MQTT contract', () => {
  let broker: Mosquitto;
  let dir: string;
  let stateDir: string;
  let secretFile: string;
  let model: { model: string; labels: string };
  let steady: string;
  let alternating: string;

  const configFor = (cameras: string): string => {
    const p = join(dir, `config-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(
      p,
      `device_id: dev1
state_dir: ${stateDir}
model: { path: ${model.model}, labels: ${model.labels}, execution_providers: [cpu] }
cameras:
${cameras}
mqtt: { url: ${broker.url}, base_topic: mc }
publish: { top_k: 3, only_on_change: { hysteresis: 0.2, heartbeat: 1 } }
watch:
  - { label: red, frames: 2, min_score: 0.5 }
homeassistant: { enabled: true }
commands: { max_payload_bytes: 1024, secret_file: ${secretFile} }
stats_interval: 1
`,
    );
    return p;
  };
  const allCameras = (): string =>
    `  - id: steady\n    source: { type: directory, path: ${steady}, fps: 10, loop: true }\n` +
    `  - id: alt\n    source: { type: directory, path: ${alternating}, fps: 10, loop: true }\n` +
    `  - id: gone\n    source: { type: synthetic, fps: 1, width: 64, height: 48 }\n`;

  beforeAll(async () => {
    broker = await Mosquitto.start();
    dir = tempDir();
    stateDir = join(dir, 'state');
    secretFile = join(dir, 'command-secret');
    writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
    model = writeColourModel(join(dir, 'm'));
    steady = join(dir, 'steady');
    alternating = join(dir, 'alt');
    mkdirSync(steady);
    mkdirSync(alternating);
    writeFileSync(join(steady, 'red.jpg'), await colourImage('red'));
    for (const [i, c] of ['red', 'red', 'red', 'blue', 'blue', 'blue'].entries()) {
      writeFileSync(join(alternating, `${i}-${c}.jpg`), await colourImage(c));
    }
  });

  afterAll(async () => {
    await broker?.stop();
  });

  async function run(config: string, body: (daemon: Started, sub: MqttCollector, req: Requester) => Promise<void>): Promise<void> {
    const sub = await MqttCollector.connect(broker.url, [`${ROOT}/#`, 'homeassistant/#']);
    const req = await Requester.connect(broker.url, ROOT, { secret: SECRET });
    const daemon = startCli(['run', '--config', config]);
    try {
      await body(daemon, sub, req);
    } finally {
      daemon.proc.kill('SIGTERM');
      const done = await daemon.finished;
      await sub.close();
      await req.close();
      expect(done.code, done.stderr).toBe(0);
    }
  }

  it('announces Home Assistant entities, publishes label events, change-only predictions and stats', async () => {
    await run(configFor(allCameras()), async (_daemon, sub, req) => {
      // Discovery: one device per camera, the documented fields, a binary_sensor per watch rule.
      await sub.waitFor((m) => m.filter((x) => x.topic.startsWith('homeassistant/') && x.topic.endsWith('/config')).length >= 18, 20_000, 'discovery');
      const configs = sub.messages.filter((x) => x.topic.startsWith('homeassistant/') && x.payload.length > 0);
      for (const c of configs) {
        const p = json<Record<string, unknown>>(c);
        expect(p).toMatchObject({ name: expect.any(String), unique_id: expect.any(String), state_topic: expect.stringMatching(/^mc\/dev1\//) });
        expect(p.device).toMatchObject({ identifiers: [expect.any(String)], name: expect.any(String) });
        expect(p.origin).toMatchObject({ name: 'edge-classifier' });
        expect((p.availability as { topic: string }[]).map((a) => a.topic)).toContain(`${ROOT}/status`);
      }
      const topics = configs.map((c) => c.topic);
      for (const cam of ['steady', 'alt', 'gone']) {
        for (const obj of ['top_label', 'top_score', 'fps', 'inference_time', 'model_version']) {
          expect(topics).toContain(`homeassistant/sensor/edge_classifier_dev1/${cam}_${obj}/config`);
        }
        expect(topics).toContain(`homeassistant/binary_sensor/edge_classifier_dev1/${cam}_label_red/config`);
      }
      expect(new Set(configs.map((c) => json<{ unique_id: string }>(c).unique_id)).size).toBe(configs.length);
      // They are retained: Home Assistant starting later still finds them.
      const late = await MqttCollector.connect(broker.url, ['homeassistant/+/edge_classifier_dev1/+/config']);
      await late.waitFor((m) => m.length >= configs.length, 10_000, 'retained discovery');
      expect(late.messages.every((m) => m.retain)).toBe(true);
      await late.close();

      // Label events: red switches ON and OFF on the alternating camera, debounced.
      const labelTopic = `${ROOT}/alt/label/red`;
      await sub.waitFor((m) => m.filter((x) => x.topic === labelTopic).length >= 3, 20_000, 'label events');
      const events = sub.on(labelTopic).map((x) => json<{ state: string }>(x));
      for (const e of events) expect(schemaErrors.labelEvent(e)).toEqual([]);
      const states = events.map((e) => e.state);
      expect(states.every((s, i) => i === 0 || s !== states[i - 1])).toBe(true); // switches only
      expect(new Set(states)).toEqual(new Set(['ON', 'OFF']));
      expect(json<{ state: string }>(sub.on(`${ROOT}/steady/label/red`)[0]).state).toBe('ON');

      // Change-only: the steady camera classifies ~10 frames/s but publishes on change + heartbeat.
      const before = sub.on(`${ROOT}/steady/prediction`).length;
      const statsBefore = sub.on(`${ROOT}/stats`).length;
      await new Promise((r) => setTimeout(r, 3_000));
      const published = sub.on(`${ROOT}/steady/prediction`).length - before;
      const stats = sub.on(`${ROOT}/stats`).slice(statsBefore).map((x) => json<{ cameras: Record<string, { classified: number }> }>(x));
      const classified = (stats.at(-1)?.cameras.steady?.classified ?? 0) - (stats[0]?.cameras.steady?.classified ?? 0);
      expect(classified).toBeGreaterThan(10);
      expect(published).toBeGreaterThanOrEqual(1);
      expect(published).toBeLessThanOrEqual(5);
      for (const s of sub.on(`${ROOT}/stats`)) expect(schemaErrors.stats(s.json)).toEqual([]);
      for (const p of sub.on(`${ROOT}/steady/prediction`)) expect(schemaErrors.prediction(p.json)).toEqual([]);

      // Home Assistant's birth message gets availability republished.
      const onlineBefore = sub.on(`${ROOT}/status`).length;
      await req.publish('homeassistant/status', 'online');
      await sub.waitFor((m) => m.filter((x) => x.topic === `${ROOT}/status`).length > onlineBefore, 10_000, 'republished status');
      expect(json<{ state: string }>(sub.on(`${ROOT}/status`).at(-1))).toMatchObject({ state: 'online' });
    });
  });

  it('answers commands: snapshot, classify, set (persisted), pause/resume, and errors for bad requests', async () => {
    await run(configFor(allCameras()), async (daemon, sub, req) => {
      await sub.waitFor((m) => m.some((x) => x.topic === `${ROOT}/alt/prediction`), 20_000, 'first predictions');

      const snap = await req.send('snapshot', { camera: 'alt' });
      expect(snap).toMatchObject({ status: 'ok', error: null, transaction: expect.any(String) });
      await sub.waitFor((m) => m.some((x) => x.topic === `${ROOT}/alt/snapshot`), 10_000, 'snapshot');
      const jpeg = sub.on(`${ROOT}/alt/snapshot`)[0]!.raw;
      expect(snap.data).toMatchObject({ topic: `${ROOT}/alt/snapshot`, seq: expect.any(Number), bytes: jpeg.length });
      expect(await sharp(jpeg).metadata()).toMatchObject({ format: 'jpeg', width: 320, height: 240 });

      const cls = await req.send('classify', { camera: 'steady' });
      expect(cls.status).toBe('ok');
      expect(schemaErrors.prediction(cls.data)).toEqual([]);
      expect((cls.data as Prediction).top[0]?.label).toBe('red');

      const set = await req.send('set', { top_k: 2, min_score: 0.001 });
      expect(set).toMatchObject({ status: 'ok', data: { persisted: true, settings: { top_k: 2, min_score: 0.001 } } });
      expect(JSON.parse(readFileSync(join(stateDir, 'runtime.json'), 'utf8'))).toEqual({ top_k: 2, min_score: 0.001 });
      const after = await req.send('classify', { camera: 'alt' });
      expect((after.data as Prediction).top.length).toBeLessThanOrEqual(2);

      const pause = await req.send('pause', { camera: 'alt' });
      expect(pause).toMatchObject({ status: 'ok', data: { paused: true } });
      await sub.waitFor((m) => json<{ paused?: boolean }>(m.filter((x) => x.topic === `${ROOT}/alt/status`).at(-1))?.paused === true, 10_000, 'paused status');
      expect(json<{ state: string }>(sub.on(`${ROOT}/alt/status`).at(-1)).state).toBe('disabled');
      const paused = await req.send('classify', { camera: 'alt', timeout_ms: 800 });
      expect(paused).toMatchObject({ status: 'error', error: expect.stringMatching(/no frame from alt/) });
      expect(await req.send('resume', { camera: 'alt' })).toMatchObject({ status: 'ok' });
      expect((await req.send('classify', { camera: 'alt' })).status).toBe('ok');

      // Bad requests: each gets an error response naming the problem.
      // Well-formed requests carry the secret, so what is checked is the request, not who sent it.
      const withSecret = (payload: string): string => {
        try {
          const body: unknown = JSON.parse(payload);
          return body !== null && typeof body === 'object' && !Array.isArray(body) ? JSON.stringify({ ...body, secret: SECRET }) : payload;
        } catch {
          return payload;
        }
      };
      const bad = async (command: string, payload: string, transaction: string | null = null): Promise<string> =>
        (await req.sendRaw(command, withSecret(payload), transaction)).error ?? '';
      expect(await bad('reboot', '{"transaction":"x1"}', 'x1')).toMatch(/unknown command "reboot"; known: snapshot, classify, set/);
      expect(await bad('set', '{"transaction":"x2", "top_k": "lots"}', 'x2')).toMatch(/top_k: /);
      expect(await bad('set', '{"transaction":"x3", "colour": 1}', 'x3')).toMatch(/colour/);
      expect(await bad('snapshot', '{"transaction":"x4", "camera": "nope"}', 'x4')).toMatch(/unknown camera "nope"/);
      expect(await bad('set', '{"top_k": 2,')).toMatch(/malformed JSON/);
      expect(await bad('set', '[1,2]')).toMatch(/JSON object/);
      expect(await bad('set', JSON.stringify({ pad: 'x'.repeat(2000) }))).toMatch(/over the limit of 1024/);
      expect(await bad('update-check', '{"transaction":"x5"}', 'x5')).toMatch(/not configured/);
      for (const r of req.responses) expect(schemaErrors.response(r.body)).toEqual([]);
      expect(daemon.proc.exitCode).toBeNull();
    });

    // A restart keeps the runtime settings, and removes the entities of a camera no longer configured.
    const fewer = `  - id: steady\n    source: { type: directory, path: ${steady}, fps: 10, loop: true }\n  - id: alt\n    source: { type: directory, path: ${alternating}, fps: 10, loop: true }\n`;
    await run(configFor(fewer), async (_daemon, sub) => {
      const removed = 'homeassistant/sensor/edge_classifier_dev1/gone_top_label/config';
      await sub.waitFor((m) => m.some((x) => x.topic === removed && x.payload === ''), 20_000, 'removed entity');
      expect(sub.messages.some((x) => x.topic === 'homeassistant/sensor/edge_classifier_dev1/steady_top_label/config' && x.payload !== '')).toBe(true);
      await sub.waitFor((m) => m.some((x) => x.topic === `${ROOT}/alt/prediction`), 20_000, 'predictions');
      for (const p of sub.on(`${ROOT}/alt/prediction`)) expect(json<Prediction>(p).top.length).toBeLessThanOrEqual(2);
    });
    expect(existsSync(join(stateDir, 'runtime.json'))).toBe(true);
  });
});
