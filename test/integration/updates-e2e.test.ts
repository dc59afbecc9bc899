import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Mosquitto } from '../helpers/mosquitto.js';
import { MqttCollector, type Received } from '../helpers/mqtt-collector.js';
import { Requester } from '../helpers/mqtt-request.js';
import { Nginx } from '../helpers/nginx.js';
import { runCli, startCli, waitForLog, type Started } from '../helpers/cli.js';
import { colourImage, tempDir } from '../helpers/fixtures.js';
import { schemaErrors } from '../helpers/schemas.js';
import { buildDemoModel, demoLabels } from '../../src/modelgen/demo-model.js';
import { buildSlowModel } from '../../src/modelgen/test-models.js';
import { signManifest } from '../../src/updates/signing.js';

// Over-the-air updates end to end: releases built by `release publish`, served by a real nginx,
// installed by the daemon while it classifies, reported on retained B/D/model.

interface Prediction {
  seq: number;
  model: { version: string };
}
interface ModelState {
  state: string;
  installed: { version: string } | null;
  last_error: string | null;
  refused?: { version: string; reason: string }[];
}

const ROOT = 'up/dev';
const preds = (m: Received[]): Prediction[] => m.filter((x) => x.topic === `${ROOT}/cam/prediction`).map((x) => x.json as Prediction);
const modelState = (m: Received[]): ModelState | undefined => m.filter((x) => x.topic === `${ROOT}/model`).at(-1)?.json as ModelState | undefined;

describe('over-the-air model updates', () => {
  let broker: Mosquitto;
  let nginx: Nginx;
  let dir: string;
  let web: string;
  let keys: string;
  let config: string;
  const models: Record<string, string> = {};

  /** Builds a release with the real CLI and makes it the one nginx serves. */
  async function release(version: string, model: string, opts: { key?: string; extra?: string[] } = {}): Promise<string> {
    const out = join(dir, `release-${version}-${Math.random().toString(36).slice(2)}`);
    const r = await runCli(['release', 'publish', '--model', model, '--labels', join(dir, 'labels.txt'), '--preset', 'imagenet', '--version', version,
      '--key', opts.key ?? join(keys, 'release-key.pem'), '--out', out, '--validation', join(dir, 'validation'), ...(opts.extra ?? [])]);
    expect(r.code, r.stderr).toBe(0);
    rmSync(join(web, 'stable'), { recursive: true, force: true });
    cpSync(out, join(web, 'stable'), { recursive: true });
    return join(web, 'stable');
  }

  beforeAll(async () => {
    dir = tempDir();
    web = join(dir, 'www');
    mkdirSync(web);
    broker = await Mosquitto.start();
    nginx = await Nginx.start(web);
    writeFileSync(join(dir, 'labels.txt'), demoLabels());
    models.a = join(dir, 'a.onnx');
    models.b = join(dir, 'b.onnx');
    models.slow = join(dir, 'slow.onnx');
    writeFileSync(models.a, buildDemoModel());
    writeFileSync(models.b, buildDemoModel({ outputRank4: true })); // same answers, other bytes
    writeFileSync(models.slow, buildSlowModel({ repeats: 300 }));
    models.bomb = join(dir, 'bomb.onnx');
    writeFileSync(models.bomb, buildDemoModel({ failWhenBright: true }));
    mkdirSync(join(dir, 'validation'));
    mkdirSync(join(dir, 'frames'));
    for (const c of ['red', 'green', 'blue']) {
      writeFileSync(join(dir, 'validation', `${c}.jpg`), await colourImage(c));
      writeFileSync(join(dir, 'frames', `${c}.jpg`), await colourImage(c));
    }
    keys = join(dir, 'keys');
    expect((await runCli(['release', 'keygen', '--out', keys])).code).toBe(0);
    expect((await runCli(['release', 'keygen', '--out', join(dir, 'other-keys')])).code).toBe(0);
    config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      `device_id: dev\nstate_dir: ${join(dir, 'state')}\n` +
        `model: { path: ${models.a}, labels: ${join(dir, 'labels.txt')}, execution_providers: [cpu] }\n` +
        `cameras:\n  - id: cam\n    source: { type: directory, path: ${join(dir, 'frames')}, fps: 10, loop: true }\n` +
        `mqtt: { url: ${broker.url}, base_topic: up }\nstats_interval: 0\ncommands: { control: open }\n` +
        `updates:\n  manifest_url: ${nginx.url('/stable/manifest.json')}\n  public_keys: [${join(keys, 'release-key.pub.pem')}]\n  interval: 3600\n` +
        `  probation: { seconds: 4, max_restarts: 2 }\n  validation: { max_latency_factor: 3 }\n`,
    );
  });

  afterAll(async () => {
    await nginx?.stop();
    await broker?.stop();
  });

  async function withDaemon(body: (daemon: Started, sub: MqttCollector, req: Requester) => Promise<void>): Promise<void> {
    const sub = await MqttCollector.connect(broker.url, [`${ROOT}/#`]);
    const req = await Requester.connect(broker.url, ROOT);
    const daemon = startCli(['run', '--config', config]);
    try {
      await sub.waitFor((m) => preds(m).length >= 3, 30_000, 'predictions');
      await body(daemon, sub, req);
    } finally {
      daemon.proc.kill('SIGTERM');
      await daemon.finished;
      await sub.close();
      await req.close();
    }
  }

  it('first start: with no model configured or installed, installs the release before anything else', async () => {
    await release('0.5.0', models.a!);
    const fresh = join(dir, 'first-start.yaml');
    writeFileSync(fresh, readFileSync(config, 'utf8').replace(/^model: .*$/m, 'model: { execution_providers: [cpu] }').replace(`state_dir: ${join(dir, 'state')}`, `state_dir: ${join(dir, 'state-first')}`));
    const sub = await MqttCollector.connect(broker.url, [`${ROOT}/#`]);
    const daemon = startCli(['run', '--config', fresh]);
    try {
      await sub.waitFor((m) => preds(m).length >= 3, 60_000, 'predictions by the installed model');
      expect(preds(sub.messages).every((p) => p.model.version === '0.5.0')).toBe(true);
      expect(modelState(sub.messages)?.installed?.version).toBe('0.5.0');
    } finally {
      daemon.proc.kill('SIGTERM');
      expect((await daemon.finished).code).toBe(0);
      await sub.close();
    }
  });

  it('installs a release while classifying, with no lost frame, and reports it on B/D/model', async () => {
    await release('1.0.0', models.b!);
    await withDaemon(async (_daemon, sub, req) => {
      const r = await req.send('update-check', {}, 60_000);
      expect(r, JSON.stringify(r)).toMatchObject({ status: 'ok', data: { outcome: { result: 'installed', version: '1.0.0' } } });
      await sub.waitFor((m) => preds(m).some((p) => p.model.version === '1.0.0'), 20_000, 'predictions by the new model');
      await sub.waitFor((m) => preds(m).filter((p) => p.model.version === '1.0.0').length >= 5, 20_000, 'more predictions');
      const seqs = preds(sub.messages).map((p) => p.seq);
      // Every captured frame was classified and published across the swap: no gap in seq.
      expect(seqs.slice(1).every((s, i) => s === seqs[i]! + 1)).toBe(true);
      const versions = preds(sub.messages).map((p) => p.model.version);
      expect(versions[0]).not.toBe('1.0.0');
      expect(versions.at(-1)).toBe('1.0.0');
      await sub.waitFor((m) => modelState(m)?.state === 'idle' && modelState(m)?.installed?.version === '1.0.0', 20_000, 'probation over');
      for (const m of sub.messages.filter((x) => x.topic === `${ROOT}/model`)) expect(schemaErrors.modelUpdate(m.json)).toEqual([]);
      const again = await req.send('update-check', {}, 30_000);
      expect(again.data).toMatchObject({ outcome: { result: expect.stringMatching(/^(not-modified|up-to-date)$/) } });
    });
  });

  it('refuses bad releases with a clear reason, and the installed model keeps serving', async () => {
    const cases: [string, () => Promise<void>, RegExp][] = [
      ['a tampered artifact', async () => {
        const d = await release('1.1.0', models.a!);
        const m = readFileSync(join(d, 'model.onnx'));
        m.writeUInt8(m.readUInt8(m.length - 1) ^ 0xff, m.length - 1);
        writeFileSync(join(d, 'model.onnx'), m);
      }, /sha256/i],
      ['a signature by an untrusted key', async () => {
        await release('1.2.0', models.a!, { key: join(dir, 'other-keys', 'release-key.pem') });
      }, /signature does not match any trusted key/],
      ['an expired manifest', async () => {
        const d = await release('1.3.0', models.a!);
        const manifest = JSON.parse(readFileSync(join(d, 'manifest.json'), 'utf8')) as Record<string, unknown>;
        manifest.expires = '2020-01-01T00:00:00.000Z';
        manifest.created = '2019-12-01T00:00:00.000Z';
        const bytes = Buffer.from(JSON.stringify(manifest));
        writeFileSync(join(d, 'manifest.json'), bytes);
        writeFileSync(join(d, 'manifest.json.sig'), `${signManifest(bytes, readFileSync(join(keys, 'release-key.pem'), 'utf8'))}\n`);
      }, /expired/i],
      ['a downgrade', async () => {
        await release('0.9.0', models.a!);
      }, /not newer|downgrade|older/i],
      ['a model that fails validation (too slow)', async () => {
        await release('1.4.0', models.slow!);
      }, /validation failed: .*median/i],
    ];
    await withDaemon(async (_daemon, sub, req) => {
      for (const [name, make, reason] of cases) {
        await make();
        const r = await req.send('update-check', {}, 60_000);
        const outcome = (r.data as { outcome?: { result: string; reason?: string } } | null)?.outcome;
        expect(outcome?.result, name).toMatch(/^(refused|failed)$/);
        await sub.waitFor((m) => reason.test(modelState(m)?.last_error ?? ''), 10_000, `B/D/model reason for ${name}`);
        expect(modelState(sub.messages)?.installed?.version, name).toBe('1.0.0');
        const n = preds(sub.messages).length;
        await sub.waitFor((m) => preds(m).length > n + 2, 10_000, `predictions after ${name}`);
        expect(preds(sub.messages).at(-1)?.model.version, name).toBe('1.0.0');
        console.log(`refused ${name}: ${modelState(sub.messages)?.last_error}`);
      }
      expect(modelState(sub.messages)?.refused?.map((r) => r.version)).toContain('1.4.0');
    });
  });

  it('rolls back a release that crash-loops the daemon during probation', async () => {
    await release('2.0.0', models.a!);
    writeFileSync(config, readFileSync(config, 'utf8').replace('probation: { seconds: 4, max_restarts: 2 }', 'probation: { seconds: 120, max_restarts: 2 }'));
    await withDaemon(async (daemon, _sub, req) => {
      const r = await req.send('update-check', {}, 60_000);
      expect(r.data).toMatchObject({ outcome: { result: 'installed', version: '2.0.0' } });
      daemon.proc.kill('SIGKILL'); // the "crash"
    });
    // Two more crashes right after start: the restarts are counted in the state file.
    for (let i = 0; i < 2; i++) {
      const d = startCli(['run', '--config', config]);
      await waitForLog(d, (l) => l.msg === 'daemon started' || l.msg === 'model rolled back', 60_000);
      d.proc.kill('SIGKILL');
      await d.finished;
    }
    await withDaemon(async (_daemon, sub) => {
      await sub.waitFor((m) => modelState(m)?.state === 'rolled-back', 20_000, 'rolled-back state');
      expect(modelState(sub.messages)).toMatchObject({ installed: { version: '1.0.0' }, last_error: expect.stringMatching(/rolled back 2\.0\.0: .*restarts/) });
      expect(modelState(sub.messages)?.refused?.map((r) => r.version)).toContain('2.0.0');
      expect(preds(sub.messages).at(-1)?.model.version).toBe('1.0.0');
    });
  });

  it('rolls back a model that passes validation but fails on live frames (repeated inference errors)', async () => {
    // Validation images are dark colours; the camera now also sees a white frame, which this model cannot handle.
    await release('3.0.0', models.bomb!);
    writeFileSync(join(dir, 'frames', 'white.jpg'), await colourImage('white'));
    await withDaemon(async (_daemon, sub, req) => {
      const r = await req.send('update-check', {}, 60_000);
      expect(r.data).toMatchObject({ outcome: { result: 'installed', version: '3.0.0' } });
      await sub.waitFor((m) => modelState(m)?.state === 'rolled-back', 30_000, 'rolled back after inference errors');
      expect(modelState(sub.messages)?.last_error).toMatch(/rolled back 3\.0\.0: \d+ inference errors/);
      expect(modelState(sub.messages)?.installed?.version).toBe('1.0.0');
      const n = preds(sub.messages).length;
      await sub.waitFor((m) => preds(m).length > n + 6, 20_000, 'predictions after the rollback');
      expect(preds(sub.messages).slice(n).every((p) => p.model.version === '1.0.0')).toBe(true);
    });
  });
});
