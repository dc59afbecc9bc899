import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Mosquitto } from '../helpers/mosquitto.js';
import { MqttCollector, type Received } from '../helpers/mqtt-collector.js';
import { Nginx } from '../helpers/nginx.js';
import { REPO, runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/fixtures.js';
import { schemaErrors } from '../helpers/schemas.js';
import { groundTruth, requireShared, sharedPath } from '../real/shared.js';
import { AVX2_CPU, arm64Command, assertEmulationWorks, avx2Command, failure, killAllArm64, runArm64, startArm64 } from './emulator.js';

// A MobileNetV2 int8 release published on x64 (`release publish --validation` records the
// publisher's answers on the 72 shared photos and imagenet-50 images), served by a real nginx,
// installed over the air by the arm64 daemon (Pi 4 under qemu) on its first start with no
// model.path: the retained B/D/model reports the installed version, then the directory camera's
// predictions come from it, with the reference accuracy.
//
// The device's validation gate must accept a correct model published on another CPU. Twice:
// - published on this host, whose AVX-512 VNNI int8 kernels happen to give arm64's top-1 on all
//   72 images;
// - published on an AVX2 x64 without VNNI (Haswell, under qemu-x86_64), as on many workstations
//   and on the project's development VM, whose int8 rounding flips the top-1 of near ties on
//   about a fifth of the images (58/72 agree with arm64). A gate that demands the same top-1 on
//   90% of them refuses this good release ("validation failed: top-1 agreement 58/72 below 90%").

const VERSION = '1.0.0';

interface ModelState {
  state: string;
  installed: { version: string } | null;
  last_error: string | null;
}
interface Prediction {
  frame: { source: string };
  top: { index: number }[];
  model: { version: string };
}

describe('arm64 (Pi 4 under qemu): an over-the-air update published on x64', () => {
  let broker: Mosquitto | undefined;
  let nginx: Nginx | undefined;
  let dir: string;
  let web: string;
  let keys: string;
  let validation: string;

  beforeAll(async () => {
    requireShared();
    await assertEmulationWorks();
    dir = tempDir('ec-arm64-update-');
    validation = join(dir, 'validation');
    mkdirSync(validation);
    for (const set of ['photos', 'imagenet-50']) {
      for (const f of readdirSync(sharedPath('images', set))) copyFileSync(sharedPath('images', set, f), join(validation, f));
    }
    expect(readdirSync(validation)).toHaveLength(72);
    keys = join(dir, 'keys');
    const kg = await runCli(['release', 'keygen', '--out', keys]);
    expect(kg.code, kg.stderr).toBe(0);
    web = join(dir, 'www');
    mkdirSync(web);
    broker = await Mosquitto.start();
    nginx = await Nginx.start(web);
  });
  afterAll(async () => {
    await killAllArm64();
    await nginx?.stop();
    await broker?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true }); // 72 images, 2 releases, 2 installs: ~60 MB
  });

  /** Publishes into www/<publisher>/stable/ with `publish` (the CLI's argv builder), then installs it on a fresh arm64 daemon. */
  async function publishAndInstall(publisher: string, publish: (args: string[]) => Promise<{ code: number | null; stderr: string }>, device: string): Promise<void> {
    const t0 = performance.now();
    const pub = await publish([
      'release', 'publish',
      '--model', sharedPath('models', 'mobilenetv2-12-int8.onnx'),
      '--labels', sharedPath('labels', 'synset.txt'),
      '--preset', 'imagenet',
      '--version', VERSION,
      '--key', join(keys, 'release-key.pem'),
      '--out', join(web, publisher, 'stable'),
      '--validation', validation,
    ]);
    expect(pub.code, pub.stderr).toBe(0);
    const publishS = (performance.now() - t0) / 1000;

    // Device side, on arm64: no model.path, so it installs the release before anything else.
    const photos = sharedPath('images', 'photos');
    const files = readdirSync(photos).filter((f) => !f.startsWith('.')).sort();
    const config = join(dir, `${device}.yaml`);
    writeFileSync(
      config,
      `device_id: ${device}
state_dir: ${join(dir, `state-${device}`)}
shutdown_timeout_ms: 60000
model: { execution_providers: [cpu] }
cameras:
  - id: photos
    source: { type: directory, path: ${photos}, fps: 10, loop: false }
mqtt: { url: ${broker!.url}, base_topic: edge-classifier }
publish: { top_k: 5 }
updates:
  manifest_url: ${nginx!.url(`/${publisher}/stable/manifest.json`)}
  public_keys: [${join(keys, 'release-key.pub.pem')}]
  interval: 3600
`,
    );
    const base = `edge-classifier/${device}`;
    const modelStates = (m: Received[]): ModelState[] => m.filter((x) => x.topic === `${base}/model`).map((x) => x.json as ModelState);
    const preds = (m: Received[]): Prediction[] => m.filter((x) => x.topic === `${base}/photos/prediction`).map((x) => x.json as Prediction);
    const sub = await MqttCollector.connect(broker!.url, [`${base}/#`]);
    const t1 = performance.now();
    const daemon = startArm64(arm64Command(['run', '--config', config]));
    let stopped = false;
    try {
      const died = daemon.finished.then((f) => {
        if (!stopped) throw new Error(failure('the arm64 daemon exited before it was stopped', f));
      });
      died.catch(() => undefined); // seen by the races below
      // A failed attempt is reported at once (the daemon would retry with backoff): fail with its reason.
      const failed = sub
        .waitFor((m) => modelStates(m).some((s) => s.state === 'failed' || (s.last_error !== null && s.installed === null)), 900_000, 'a failed install')
        .then(() => {
          const s = modelStates(sub.messages).find((x) => x.state === 'failed' || x.last_error !== null);
          const why = daemon.logs().filter((l) => /validat|refused|update check/.test(String(l.msg)));
          throw new Error(`the arm64 daemon did not install ${VERSION} published on ${publisher}: ${s?.last_error ?? JSON.stringify(s)}\n${why.map((l) => JSON.stringify(l)).join('\n')}`);
        });
      failed.catch(() => undefined);
      await Promise.race([sub.waitFor((m) => modelStates(m).some((s) => s.installed?.version === VERSION), 900_000, `B/D/model installed ${VERSION}`), died, failed]);
      const installS = (performance.now() - t1) / 1000;
      const validated = daemon.logs().find((l) => l.msg === 'model validated') as { agreement?: { matched: number; total: number } } | undefined;
      for (const m of sub.messages.filter((x) => x.topic === `${base}/model`)) expect(schemaErrors.modelUpdate(m.json)).toEqual([]);
      const state = modelStates(sub.messages).at(-1)!;
      expect(state.installed?.version).toBe(VERSION);
      expect(state.state).toMatch(/^(activating|probation|idle)$/);

      await Promise.race([sub.waitFor((m) => preds(m).length >= files.length, 600_000, 'one prediction per photo'), died]);
      const p = preds(sub.messages);
      expect(p.map((x) => x.frame.source)).toEqual(files);
      for (const x of p) {
        expect(schemaErrors.prediction(x)).toEqual([]);
        expect(x.model.version).toBe(VERSION);
      }
      // The installed model is the real MobileNetV2: the reference accuracy holds on arm64 too.
      const truth = groundTruth('photos.tsv');
      const correct = p.filter((x) => truth.get(x.frame.source)?.has(x.top[0]!.index)).length;
      expect(correct).toBeGreaterThanOrEqual(17);
      console.log(
        `arm64 update from ${publisher}: published in ${publishS.toFixed(1)} s, ${VERSION} installed from nginx after ${installS.toFixed(1)} s` +
          `${validated?.agreement ? ` (validation top-1 agreement ${validated.agreement.matched}/${validated.agreement.total})` : ''}; ` +
          `${p.length} predictions by it, ${correct}/${p.length} correct; under emulation, times mean nothing`,
      );

      stopped = true;
      const f = await daemon.stop(90_000);
      expect(f.code, failure('arm64 daemon exit after SIGTERM', f)).toBe(0);
    } finally {
      stopped = true;
      await daemon.stop(30_000);
      await sub.close();
    }
  }

  it('installs a release published on this host (x64) on first start, reports it on retained B/D/model, and classifies with it', async () => {
    await publishAndInstall('host', (args) => runCli(args), 'pi4-02');
  });

  it(`installs a release published on an AVX2 x64 without VNNI (${AVX2_CPU.split(',')[0]} under qemu-x86_64), whose int8 top-1 differs from arm64 on near ties`, async () => {
    await publishAndInstall('avx2', (args) => runArm64(avx2Command(args), { cwd: REPO, timeoutMs: 900_000 }), 'pi4-03');
  });
});
