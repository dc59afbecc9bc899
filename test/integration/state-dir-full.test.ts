import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Mosquitto } from '../helpers/mosquitto.js';
import { MqttCollector, type Received } from '../helpers/mqtt-collector.js';
import { Requester } from '../helpers/mqtt-request.js';
import { Nginx } from '../helpers/nginx.js';
import { Tmpfs } from '../helpers/tmpfs.js';
import { runCli, startCli, type Started } from '../helpers/cli.js';
import { serveRelease } from '../helpers/releases.js';
import { colourImage, tempDir } from '../helpers/fixtures.js';
import { schemaErrors } from '../helpers/schemas.js';
import { buildDemoModel, demoLabels } from '../../src/modelgen/demo-model.js';

// state_dir on a real 4 MB tmpfs, filled to the last byte: the daemon must start and classify
// whatever the update state (here: a model in probation, then one that trips its restart limit
// and must roll back), report the failed state writes on B/D/model, and write them once there
// is room again. Before the fix, counting the probation restart failed with ENOSPC and the
// daemon exited 1 ("cannot start").

interface ModelState {
  state: string;
  installed: { version: string } | null;
  last_error: string | null;
  storage?: { pending: boolean; failed_writes: number; error: string | null };
}
interface SavedState {
  installed?: string;
  probation?: { version: string; restarts: number };
  refused: Record<string, { reason: string }>;
}

const ROOT = 'full/dev';
const preds = (m: Received[]): { model: { version: string } }[] =>
  m.filter((x) => x.topic === `${ROOT}/cam/prediction`).map((x) => x.json as { model: { version: string } });
const modelState = (m: Received[]): ModelState | undefined => m.filter((x) => x.topic === `${ROOT}/model`).at(-1)?.json as ModelState | undefined;

describe('a full state_dir', () => {
  let broker: Mosquitto;
  let nginx: Nginx;
  let fs: Tmpfs;
  let dir: string;
  let config: string;
  let keys: string;

  const saved = (): SavedState => JSON.parse(readFileSync(join(fs.dir, 'update-state.json'), 'utf8')) as SavedState;

  beforeAll(async () => {
    dir = tempDir();
    mkdirSync(join(dir, 'www'));
    fs = Tmpfs.mount(join(dir, 'state'), '4m');
    broker = await Mosquitto.start();
    nginx = await Nginx.start(join(dir, 'www'));
    writeFileSync(join(dir, 'labels.txt'), demoLabels());
    writeFileSync(join(dir, 'a.onnx'), buildDemoModel());
    writeFileSync(join(dir, 'b.onnx'), buildDemoModel({ outputRank4: true }));
    mkdirSync(join(dir, 'frames'));
    for (const c of ['red', 'green', 'blue']) writeFileSync(join(dir, 'frames', `${c}.jpg`), await colourImage(c));
    keys = join(dir, 'keys');
    expect((await runCli(['release', 'keygen', '--out', keys])).code).toBe(0);
    config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      `device_id: dev\nstate_dir: ${fs.dir}\n` +
        `model: { path: ${join(dir, 'a.onnx')}, labels: ${join(dir, 'labels.txt')}, execution_providers: [cpu] }\n` +
        `cameras:\n  - id: cam\n    source: { type: directory, path: ${join(dir, 'frames')}, fps: 5, loop: true }\n` +
        `mqtt: { url: ${broker.url}, base_topic: full }\nstats_interval: 0\ncommands: { control: open }\n` +
        `updates:\n  manifest_url: ${nginx.url('/stable/manifest.json')}\n  public_keys: [${join(keys, 'release-key.pub.pem')}]\n  interval: 3600\n` +
        `  probation: { seconds: 600, max_restarts: 3 }\n  validation: { max_latency_factor: 1000 }\n`,
    );
  });

  afterAll(async () => {
    fs?.unmount();
    await nginx?.stop();
    await broker?.stop();
  });

  const release = (version: string, model: string): Promise<void> => serveRelease(dir, keys, version, model);

  async function withDaemon(sub: MqttCollector, body: (d: Started) => Promise<void>): Promise<void> {
    const daemon = startCli(['run', '--config', config]);
    let ok = false;
    try {
      const n = preds(sub.messages).length;
      const exited = daemon.finished.then((f) => Promise.reject(new Error(`the daemon exited (${f.code ?? f.signal}): ${f.stdout.split('\n').filter((l) => /"level":(50|60)/.test(l)).join('\n')}`)));
      exited.catch(() => undefined);
      await Promise.race([sub.waitFor((m) => preds(m).length > n + 2, 30_000, 'predictions'), exited]);
      await body(daemon);
      ok = true;
    } finally {
      daemon.proc.kill('SIGTERM');
      const f = await daemon.finished;
      if (ok) expect(f.code, 'a clean stop, even with the disk full').toBe(0);
    }
  }

  it('starts and classifies with a model in probation, reports the failed write, and writes it once there is room', async () => {
    const sub = await MqttCollector.connect(broker.url, [`${ROOT}/#`]);
    const req = await Requester.connect(broker.url, ROOT);
    try {
      await release('1.0.0', 'b.onnx');
      await withDaemon(sub, async () => {
        const r = await req.send('update-check', {}, 60_000);
        expect(r.data).toMatchObject({ outcome: { result: 'installed', version: '1.0.0' } });
      });
      expect(saved().probation).toMatchObject({ version: '1.0.0', restarts: 0 });

      const filled = fs.fill();
      console.log(`tmpfs filled with ${filled} bytes`);
      expect(() => writeFileSync(join(fs.dir, 'probe'), 'x'.repeat(5000))).toThrow(/ENOSPC/);
      await withDaemon(sub, async () => {
        expect(preds(sub.messages).at(-1)?.model.version).toBe('1.0.0');
        await sub.waitFor((m) => modelState(m)?.storage?.pending === true, 20_000, 'the failed write on B/D/model');
        expect(modelState(sub.messages)).toMatchObject({ state: 'probation', storage: { pending: true, error: expect.stringMatching(/ENOSPC/) } });
        expect(saved().probation?.restarts, 'not on disk yet').toBe(0);
        // A release while the disk is full: its download fails, the daemon keeps classifying.
        await release('2.0.0', 'a.onnx');
        const r = await req.send('update-check', {}, 60_000);
        expect(r.data).toMatchObject({ outcome: { result: 'failed', reason: expect.stringMatching(/ENOSPC|no space|disk full/i) } });
        const n = preds(sub.messages).length;
        await sub.waitFor((m) => preds(m).length > n + 2, 10_000, 'predictions after the failed download');

        fs.unfill();
        await sub.waitFor((m) => modelState(m)?.storage?.pending === false, 20_000, 'the write once there is room');
        expect(saved().probation).toMatchObject({ version: '1.0.0', restarts: 1 });
        expect(modelState(sub.messages)?.storage).toMatchObject({ pending: false, error: null });
        expect(modelState(sub.messages)?.storage?.failed_writes).toBeGreaterThanOrEqual(1);
        for (const m of sub.messages.filter((x) => x.topic === `${ROOT}/model`)) expect(schemaErrors.modelUpdate(m.json)).toEqual([]);
      });
      // Counting goes on across restarts.
      await withDaemon(sub, () => Promise.resolve());
      expect(saved().probation?.restarts).toBe(2);
    } finally {
      await sub.close();
      await req.close();
    }
  }, 180_000);

  it('rolls back a model that trips its restart limit on a full disk, and remembers it', async () => {
    expect(saved().probation).toMatchObject({ version: '1.0.0', restarts: 2 });
    fs.fill();
    const sub = await MqttCollector.connect(broker.url, [`${ROOT}/#`]);
    try {
      // Third start within the window: max_restarts (3) reached, 1.0.0 is rolled back.
      await withDaemon(sub, async () => {
        await sub.waitFor((m) => modelState(m)?.state === 'rolled-back', 20_000, 'rolled back');
        expect(modelState(sub.messages)?.last_error).toMatch(/rolled back 1\.0\.0: 3 restarts/);
        expect(preds(sub.messages).at(-1)?.model.version).not.toBe('1.0.0');
        // The rolled-back version was deleted to make room, so the refusal reached the disk.
        expect(existsSync(join(fs.dir, 'models', '1.0.0'))).toBe(false);
        expect(saved().refused['1.0.0']?.reason).toMatch(/3 restarts/);
        expect(saved().installed).toBeUndefined();
      });
    } finally {
      fs.unfill();
      await sub.close();
    }
  }, 120_000);
});
