import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Mosquitto } from '../helpers/mosquitto.js';
import { MqttCollector, type Received } from '../helpers/mqtt-collector.js';
import { startCli, waitForLog, type Started } from '../helpers/cli.js';
import { colourImage, tempDir, writeColourModel } from '../helpers/fixtures.js';
import { freePort } from '../helpers/ports.js';
import { schemaErrors } from '../helpers/schemas.js';

// `systemctl reload` as an operator uses it: the built CLI on a config file, a real mosquitto,
// the file edited and SIGHUP sent. What changes at runtime is applied without losing a frame,
// the rest is reported as needing a restart, and a broken file changes nothing.

const ROOT = 'rl/rl-01';

interface Prediction {
  camera: string;
  seq: number;
  top: { label: string; score: number }[];
}
interface Report {
  result: string;
  applied: string[];
  needs_restart: string[];
  cameras: { added: string[]; removed: string[]; restarted: string[] };
  errors: string[];
}

const pred = (m: Received): Prediction => m.json as Prediction;
const isPred = (camera: string) => (m: Received): boolean => m.topic === `${ROOT}/${camera}/prediction`;

describe('reload on SIGHUP', () => {
  let broker: Mosquitto;
  let dir: string;
  let model: { model: string; labels: string };
  let modelCopy: string;
  const images: Record<string, string> = {};

  interface Options {
    topK?: number;
    level?: string;
    cameras?: string[];
    modelPath?: string;
    mqttUrl?: string;
  }
  const configText = (o: Options = {}): string => {
    const cams = (o.cameras ?? ['keep', 'gone'])
      .map((id) => `  - id: ${id}\n    source: { type: directory, path: ${images[id]}, fps: ${id === 'keep' ? 10 : 5}, loop: true }\n`)
      .join('');
    return `device_id: rl-01
state_dir: ${join(dir, 'state')}
model: { path: ${o.modelPath ?? model.model}, labels: ${model.labels}, execution_providers: [cpu] }
cameras:
${cams}mqtt: { url: ${o.mqttUrl ?? broker.url}, base_topic: rl }
publish: { top_k: ${o.topK ?? 3} }
homeassistant: { enabled: true }
log: { level: ${o.level ?? 'info'} }
stats_interval: 0
`;
  };

  beforeAll(async () => {
    broker = await Mosquitto.start();
    dir = tempDir('ec-reload-');
    model = writeColourModel(join(dir, 'model'));
    modelCopy = join(dir, 'model', 'copy.onnx');
    copyFileSync(model.model, modelCopy);
    for (const [id, colours] of Object.entries({ keep: ['red', 'green', 'blue'], gone: ['yellow'], added: ['purple'] })) {
      images[id] = join(dir, id);
      mkdirSync(images[id]);
      for (const [i, c] of colours.entries()) writeFileSync(join(images[id], `${i}-${c}.jpg`), await colourImage(c));
    }
  });

  afterAll(async () => {
    await broker?.stop();
  });

  /** Sends SIGHUP and waits for the next reload report on B/D/config. */
  async function reload(daemon: Started, sub: MqttCollector, text: string): Promise<Report> {
    const configPath = join(dir, 'config.yaml');
    writeFileSync(configPath, text);
    const before = sub.on(`${ROOT}/config`).filter((m) => m.payload !== '').length;
    daemon.proc.kill('SIGHUP');
    await sub.waitFor((m) => m.filter((x) => x.topic === `${ROOT}/config` && x.payload !== '').length > before, 30_000, 'reload report');
    const report = sub.on(`${ROOT}/config`).filter((m) => m.payload !== '').at(-1)!;
    expect(schemaErrors.configReport(report.json)).toEqual([]);
    return report.json as Report;
  }

  /** Waits for `n` more predictions of `camera` after the messages seen so far; returns them. */
  async function more(sub: MqttCollector, camera: string, n: number): Promise<Prediction[]> {
    const from = sub.messages.length;
    await sub.waitFor((m) => m.slice(from).filter(isPred(camera)).length >= n, 30_000, `${n} more predictions of ${camera}`);
    return sub.messages.slice(from).filter(isPred(camera)).map(pred);
  }

  it('applies runtime changes without losing a frame, reports the rest, and survives broken files', { timeout: 240_000 }, async () => {
    const configPath = join(dir, 'config.yaml');
    writeFileSync(configPath, configText());
    const sub = await MqttCollector.connect(broker.url, [`${ROOT}/#`, 'homeassistant/#']);
    const daemon = startCli(['run', '--config', configPath]);
    try {
      // --- running on the first file: top 3, cameras keep and gone
      await more(sub, 'keep', 3);
      await more(sub, 'gone', 2);
      const goneEntity = 'homeassistant/sensor/edge_classifier_rl-01/gone_top_label/config';
      await sub.waitFor((m) => m.some((x) => x.topic === goneEntity && x.payload !== ''), 30_000, 'discovery of gone');
      expect(sub.messages.filter(isPred('keep')).every((m) => pred(m).top.length === 3)).toBe(true);
      expect(daemon.logs().filter((l) => Number(l.level) < 30)).toEqual([]); // info: no debug lines yet

      // --- publish, cameras and log level change; model.path and mqtt.url need a restart
      const v2 = { topK: 1, level: 'debug', cameras: ['keep', 'added'] };
      const applied = await reload(daemon, sub, configText({ ...v2, modelPath: modelCopy, mqttUrl: 'mqtt://127.0.0.1:1' }));
      expect(applied).toMatchObject({
        result: 'applied',
        needs_restart: ['model.path', 'mqtt.url'],
        cameras: { added: ['added'], removed: ['gone'], restarted: [] },
        errors: [],
      });
      expect([...applied.applied].sort()).toEqual(['cameras[added]', 'cameras[gone]', 'log.level', 'publish.top_k']);
      const summary = await waitForLog(daemon, (l) => l.msg === 'config reloaded');
      expect(summary).toMatchObject({ level: 40, needs_restart: ['model.path', 'mqtt.url'], file: configPath });

      // The first top-1 prediction of keep comes after gone was removed (cameras are applied
      // before publish options): from there on, nothing of gone.
      await sub.waitFor((m) => m.some((x) => isPred('keep')(x) && pred(x).top.length === 1), 30_000, 'top_k 1');
      const firstTop1 = sub.messages.findIndex((x) => isPred('keep')(x) && pred(x).top.length === 1);
      const added = await more(sub, 'added', 2);
      expect(added.map((p) => [p.top.length, p.top[0]?.label])).toEqual([[1, 'purple'], [1, 'purple']]);
      await more(sub, 'keep', 8);
      expect(sub.messages.slice(firstTop1).filter(isPred('gone'))).toEqual([]);
      expect(sub.messages.slice(firstTop1).filter(isPred('keep')).every((m) => pred(m).top.length === 1)).toBe(true);
      // Not applied: still the one connection to this broker (mqtt.url), the one model load (model.path).
      expect(daemon.logs().filter((l) => l.msg === 'MQTT connected')).toHaveLength(1);
      expect(daemon.logs().filter((l) => l.msg === 'model loaded')).toHaveLength(1);

      // gone's retained status and Home Assistant entities are removed; added's announced.
      await sub.waitFor((m) => m.some((x) => x.topic === `${ROOT}/gone/status` && x.payload === ''), 30_000, 'gone status cleared');
      await sub.waitFor((m) => m.some((x) => x.topic === goneEntity && x.payload === ''), 30_000, 'gone entity removed');
      await sub.waitFor((m) => m.some((x) => x.topic === 'homeassistant/sensor/edge_classifier_rl-01/added_top_label/config' && x.payload !== ''), 30_000, 'added entity');
      await sub.waitFor((m) => (m.filter((x) => x.topic === `${ROOT}/status`).at(-1)?.json as { cameras?: string[] })?.cameras?.join() === 'keep,added', 30_000, 'status lists the cameras');
      const late = await MqttCollector.connect(broker.url, [`${ROOT}/+/status`, `${ROOT}/config`]);
      await late.waitFor((m) => ['keep', 'added'].every((c) => m.some((x) => x.topic === `${ROOT}/${c}/status`)) && m.some((x) => x.topic === `${ROOT}/config`), 10_000, 'retained state');
      expect(late.messages.filter((x) => x.topic === `${ROOT}/gone/status`)).toEqual([]);
      expect(late.on(`${ROOT}/config`)[0]?.json).toMatchObject({ result: 'applied', needs_restart: ['model.path', 'mqtt.url'] });
      await late.close();

      // --- broken YAML: rejected, nothing changes, keep publishes on with top 1
      const yamlError = await reload(daemon, sub, 'publish: { top_k: [\n');
      expect(yamlError.result).toBe('invalid');
      expect(yamlError.errors[0]).toMatch(/^YAML syntax: /);
      const rejected = await waitForLog(daemon, (l) => l.msg === 'config reload rejected; still running on the previous configuration');
      expect(rejected).toMatchObject({ level: 50, file: configPath });
      expect((await more(sub, 'keep', 3)).every((p) => p.top.length === 1)).toBe(true);

      // --- a schema error: named by its key path, nothing changes
      const schemaError = await reload(daemon, sub, configText({ ...v2, topK: 0, level: 'info' }));
      expect(schemaError).toMatchObject({ result: 'invalid', applied: [], needs_restart: [] });
      expect(schemaError.errors).toEqual([expect.stringMatching(/^publish\.top_k: /)]);
      expect((await more(sub, 'keep', 3)).every((p) => p.top.length === 1)).toBe(true);
      expect((await more(sub, 'added', 1)).length).toBe(1);

      // --- the file back to what runs: nothing to do, and it says so
      const unchanged = await reload(daemon, sub, configText(v2));
      expect(unchanged).toMatchObject({ result: 'unchanged', applied: [], needs_restart: [], errors: [] });
      await waitForLog(daemon, (l) => l.msg === 'config reloaded: no changes');

      // No frame of keep was lost through all of it: its seq never skips.
      const seqs = sub.messages.filter(isPred('keep')).map((m) => pred(m).seq);
      expect(seqs.length).toBeGreaterThan(20);
      expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));

      // --- SIGTERM: a clean exit; the module loggers made at start now log at debug
      daemon.proc.kill('SIGTERM');
      const done = await daemon.finished;
      expect(done.code).toBe(0);
      const logs = daemon.logs();
      const debugStops = logs.filter((l) => l.level === 20 && l.module === 'lifecycle' && l.msg === 'stopped');
      expect(debugStops.map((l) => l.part)).toEqual(expect.arrayContaining(['reload', 'cameras', 'pipeline', 'mqtt', 'model']));

      // --- a restart, and a SIGHUP while it starts (the model is loaded, the cameras may not
      // be yet): kept, and run once started.
      const restarted = startCli(['run', '--config', configPath]);
      try {
        await waitForLog(restarted, (l) => l.msg === 'model loaded', 60_000);
        const reports = sub.on(`${ROOT}/config`).length;
        restarted.proc.kill('SIGHUP');
        await waitForLog(restarted, (l) => l.msg === 'config reloaded: no changes', 30_000);
        await sub.waitFor((m) => m.filter((x) => x.topic === `${ROOT}/config`).length > reports, 30_000, 'report of the restarted daemon');
        expect(restarted.proc.exitCode).toBeNull();
        restarted.proc.kill('SIGTERM');
        expect((await restarted.finished).code).toBe(0);
      } finally {
        restarted.proc.kill('SIGKILL');
      }

      // --- another restart without a reload: the report retained by the last run is stale, and deleted
      const from = sub.messages.length;
      const again = startCli(['run', '--config', configPath]);
      try {
        await sub.waitFor((m) => m.slice(from).some((x) => x.topic === `${ROOT}/config` && x.payload === ''), 30_000, 'stale report deleted');
        again.proc.kill('SIGTERM');
        expect((await again.finished).code).toBe(0);
      } finally {
        again.proc.kill('SIGKILL');
      }
    } finally {
      daemon.proc.kill('SIGKILL');
      await sub.close();
    }
  });

  it('the demo has no config file and runs in a terminal: SIGHUP (the terminal closing) stops it cleanly', { timeout: 120_000 }, async () => {
    const port = await freePort();
    const demo = startCli(['demo', '--port', String(port), '--fps', '5']);
    try {
      const lines = (): number => demo.stdout().split('\n').filter((l) => l.startsWith('synthetic #')).length;
      for (let i = 0; i < 600 && lines() < 2; i++) await new Promise((r) => setTimeout(r, 100));
      expect(lines()).toBeGreaterThanOrEqual(2);
      demo.proc.kill('SIGHUP');
      // A graceful stop, not death by the signal (which would leave code null, signal SIGHUP).
      expect(await demo.finished).toMatchObject({ code: 0, signal: null });
    } finally {
      demo.proc.kill('SIGKILL');
    }
  });
});
