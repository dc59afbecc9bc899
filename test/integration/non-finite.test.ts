import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Mosquitto } from '../helpers/mosquitto.js';
import { MqttCollector, type Received } from '../helpers/mqtt-collector.js';
import { Requester } from '../helpers/mqtt-request.js';
import { Nginx } from '../helpers/nginx.js';
import { runCli, startCli, waitForLog, type Started } from '../helpers/cli.js';
import { parsePrometheus, value } from '../helpers/prometheus.js';
import { colourImage, tempDir } from '../helpers/fixtures.js';
import { buildDemoModel, demoLabels } from '../../src/modelgen/demo-model.js';
import { buildNonFiniteModel } from '../../src/modelgen/test-models.js';

// A model whose outputs are NaN or Infinity (a tiny generated graph: 1/0) used to publish
// `"top":[]` for every frame, with no error, no rollback and /healthz ok. Now such a frame is an
// inference error: not published, logged with the camera, counted by stage, failing /healthz,
// and fed to probation, so a freshly updated model that does it is rolled back.

const ROOT = 'nf/dev';
const preds = (m: Received[]): Received[] => m.filter((x) => x.topic === `${ROOT}/cam/prediction`);
const modelState = (m: Received[]): { state: string; installed: { version: string } | null; last_error: string | null } | undefined =>
  m.filter((x) => x.topic === `${ROOT}/model`).at(-1)?.json as never;

describe('non-finite model outputs', () => {
  let broker: Mosquitto;
  let nginx: Nginx;
  let dir: string;
  let keys: string;

  beforeAll(async () => {
    dir = tempDir();
    mkdirSync(join(dir, 'www'));
    broker = await Mosquitto.start();
    nginx = await Nginx.start(join(dir, 'www'));
    writeFileSync(join(dir, 'labels.txt'), demoLabels());
    writeFileSync(join(dir, 'good.onnx'), buildDemoModel());
    writeFileSync(join(dir, 'nan.onnx'), buildNonFiniteModel({ value: 'nan' }));
    writeFileSync(join(dir, 'inf-bright.onnx'), buildNonFiniteModel({ value: 'inf', when: 'bright' }));
    for (const d of ['dark', 'mixed', 'validation']) mkdirSync(join(dir, d));
    for (const c of ['red', 'green', 'blue']) {
      const img = await colourImage(c);
      for (const d of ['dark', 'mixed', 'validation']) writeFileSync(join(dir, d, `${c}.jpg`), img);
    }
    writeFileSync(join(dir, 'mixed', 'white.jpg'), await colourImage('white'));
    keys = join(dir, 'keys');
    expect((await runCli(['release', 'keygen', '--out', keys])).code).toBe(0);
  });

  afterAll(async () => {
    await nginx?.stop();
    await broker?.stop();
  });

  function config(name: string, model: string, frames: string, updates = ''): string {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(
      file,
      `device_id: dev\nstate_dir: ${join(dir, `state-${name}`)}\n` +
        `model: { path: ${join(dir, model)}, labels: ${join(dir, 'labels.txt')}, execution_providers: [cpu] }\n` +
        `cameras:\n  - id: cam\n    source: { type: directory, path: ${join(dir, frames)}, fps: 10, loop: true }\n` +
        `mqtt: { url: ${broker.url}, base_topic: nf }\nstats_interval: 0\ncommands: { control: open }\nhttp: { port: 0 }\n${updates}`,
    );
    return file;
  }

  async function stop(d: Started): Promise<void> {
    d.proc.kill('SIGTERM');
    const done = await d.finished;
    expect(done.code, done.stderr).toBe(0);
  }

  it('NaN outputs: no prediction is published, each frame is an inference error (logged, counted), /healthz fails', async () => {
    const sub = await MqttCollector.connect(broker.url, [`${ROOT}/#`]);
    const daemon = startCli(['run', '--config', config('nan', 'nan.onnx', 'dark')]);
    try {
      const url = String((await waitForLog(daemon, (l) => l.msg === 'HTTP server listening', 30_000)).url);
      const err = await waitForLog(daemon, (l) => l.msg === 'inference failed; frame skipped', 30_000);
      expect(err).toMatchObject({ level: 50, camera: 'cam', err: expect.stringMatching(/^model output holds NaN or Infinity \(8 of 8 values; class 0 is NaN\)/) });
      const scrape = async () => parsePrometheus(await (await fetch(`${url}metrics`)).text());
      const deadline = Date.now() + 30_000;
      while (value(await scrape(), 'edge_classifier_frames_errored_total', { camera: 'cam', stage: 'inference' }) < 10) {
        if (Date.now() > deadline) throw new Error('10 inference errors not counted');
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(value(await scrape(), 'edge_classifier_frames_classified_total', { camera: 'cam' })).toBe(0);
      // The watchdog judges every 10 s without systemd: within two intervals, /healthz says failing.
      let health: { status: number; body: { status: string; why?: string } } | undefined;
      for (const t0 = Date.now(); Date.now() - t0 < 30_000; await new Promise((r) => setTimeout(r, 500))) {
        const res = await fetch(`${url}healthz`);
        health = { status: res.status, body: (await res.json()) as { status: string; why?: string } };
        if (health.status === 503) break;
      }
      expect(health).toMatchObject({ status: 503, body: { status: 'failing', why: expect.stringMatching(/^every inference failed for .*: model output holds NaN/) } });
      expect(value(await scrape(), 'edge_classifier_inference_failing')).toBe(1);
      expect(preds(sub.messages)).toEqual([]);
    } finally {
      await stop(daemon);
      await sub.close();
    }
  }, 90_000);

  it('a release whose outputs turn non-finite on live frames is rolled back on probation', async () => {
    // Validation images are dark, so it validates; the camera also sees white, which gives Infinity.
    const out = join(dir, 'rel-2.0.0');
    const pub = await runCli(['release', 'publish', '--model', join(dir, 'inf-bright.onnx'), '--labels', join(dir, 'labels.txt'), '--preset', 'imagenet',
      '--version', '2.0.0', '--key', join(keys, 'release-key.pem'), '--out', out, '--validation', join(dir, 'validation')]);
    expect(pub.code, pub.stderr).toBe(0);
    rmSync(join(dir, 'www', 'stable'), { recursive: true, force: true });
    cpSync(out, join(dir, 'www', 'stable'), { recursive: true });
    const updates =
      `updates:\n  manifest_url: ${nginx.url('/stable/manifest.json')}\n  public_keys: [${join(keys, 'release-key.pub.pem')}]\n  interval: 3600\n` +
      `  probation: { seconds: 120, max_inference_errors: 3 }\n  validation: { max_latency_factor: 1000 }\n`;
    const sub = await MqttCollector.connect(broker.url, [`${ROOT}/#`]);
    const req = await Requester.connect(broker.url, ROOT);
    const daemon = startCli(['run', '--config', config('probation', 'good.onnx', 'mixed', updates)]);
    try {
      await sub.waitFor((m) => preds(m).length >= 3, 30_000, 'predictions');
      const r = await req.send('update-check', {}, 60_000);
      expect(r.data).toMatchObject({ outcome: { result: 'installed', version: '2.0.0' } });
      await sub.waitFor((m) => modelState(m)?.state === 'rolled-back', 30_000, 'rolled back after non-finite outputs');
      expect(modelState(sub.messages)?.last_error).toMatch(/rolled back 2\.0\.0: 3 inference errors/);
      expect(modelState(sub.messages)?.installed).toBeNull();
      // No prediction of 2.0.0 for a white frame (it had no scores): only the dark ones got through.
      const byNew = preds(sub.messages).filter((p) => (p.json as { model: { version: string } }).model.version === '2.0.0');
      for (const p of byNew) expect((p.json as { top: unknown[] }).top.length).toBeGreaterThan(0);
      expect(daemon.logs().filter((l) => l.msg === 'inference failed; frame skipped' && l.camera === 'cam').length).toBeGreaterThanOrEqual(3);
      const n = preds(sub.messages).length;
      await sub.waitFor((m) => preds(m).length > n + 4, 20_000, 'predictions after the rollback');
      expect(preds(sub.messages).slice(n).every((p) => (p.json as { model: { version: string } }).model.version !== '2.0.0')).toBe(true);
    } finally {
      await stop(daemon);
      await sub.close();
      await req.close();
    }
  }, 120_000);
});
