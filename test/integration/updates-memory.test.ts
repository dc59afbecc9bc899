import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Mosquitto } from '../helpers/mosquitto.js';
import { MqttCollector, type Received } from '../helpers/mqtt-collector.js';
import { Requester } from '../helpers/mqtt-request.js';
import { Nginx } from '../helpers/nginx.js';
import { MemoryCgroup } from '../helpers/memory-cgroup.js';
import { runCli, startCli, waitForLog, type Started } from '../helpers/cli.js';
import { serveRelease } from '../helpers/releases.js';
import { colourImage, tempDir } from '../helpers/fixtures.js';
import { buildDemoModel, demoLabels } from '../../src/modelgen/demo-model.js';
import { buildMemoryHogModel, buildSlowModel } from '../../src/modelgen/test-models.js';

// A signed release that needs more memory than the device has, under a REAL memory limit: the
// daemon runs in a memory cgroup (what systemd's MemoryMax= makes), so the kernel's OOM killer
// acts as on a device. Before the fix the daemon was killed validating it, restarted, downloaded
// and validated it again, and was killed again, for ever. Now the candidate is validated in a
// child process the OOM killer picks first: refused, remembered, and the daemon keeps serving.
// The second test kills the daemon itself during a validation (the belt: the "validating"
// marker in the state file).

interface ModelState {
  state: string;
  target?: string | null;
  installed: { version: string } | null;
  last_error: string | null;
  refused?: { version: string; reason: string }[];
}

const ROOT = 'mem/dev';
const LIMIT = 600 * 1024 * 1024;
const preds = (m: Received[]): Received[] => m.filter((x) => x.topic === `${ROOT}/cam/prediction`);
const modelState = (m: Received[]): ModelState | undefined => m.filter((x) => x.topic === `${ROOT}/model`).at(-1)?.json as ModelState | undefined;
const refusal = (m: Received[], version: string): string | undefined => modelState(m)?.refused?.find((r) => r.version === version)?.reason;

describe('a release too big for the device memory', () => {
  let broker: Mosquitto;
  let nginx: Nginx;
  let cgroup: MemoryCgroup;
  let dir: string;
  let keys: string;

  beforeAll(async () => {
    dir = tempDir();
    mkdirSync(join(dir, 'www'));
    broker = await Mosquitto.start();
    nginx = await Nginx.start(join(dir, 'www'));
    cgroup = MemoryCgroup.create(LIMIT);
    writeFileSync(join(dir, 'labels.txt'), demoLabels());
    writeFileSync(join(dir, 'a.onnx'), buildDemoModel());
    // ~1 KB on disk, 4 GiB at run time (Expand to 2^30 floats): far beyond the 600 MB limit.
    writeFileSync(join(dir, 'hog.onnx'), buildMemoryHogModel({ elements: 2 ** 30 }));
    // ~15 s of validation on one thread: long enough to kill the daemon in the middle of it.
    writeFileSync(join(dir, 'slow.onnx'), buildSlowModel({ repeats: 8000 }));
    mkdirSync(join(dir, 'frames'));
    for (const c of ['red', 'green', 'blue']) writeFileSync(join(dir, 'frames', `${c}.jpg`), await colourImage(c));
    keys = join(dir, 'keys');
    expect((await runCli(['release', 'keygen', '--out', keys])).code).toBe(0);
  });

  afterAll(async () => {
    cgroup?.remove();
    await nginx?.stop();
    await broker?.stop();
  });

  const release = (version: string, model: string): Promise<void> => serveRelease(dir, keys, version, model);

  function writeConfig(name: string): string {
    const config = join(dir, `${name}.yaml`);
    writeFileSync(
      config,
      `device_id: dev\nstate_dir: ${join(dir, `state-${name}`)}\n` +
        `model: { path: ${join(dir, 'a.onnx')}, labels: ${join(dir, 'labels.txt')}, execution_providers: [cpu] }\n` +
        `cameras:\n  - id: cam\n    source: { type: directory, path: ${join(dir, 'frames')}, fps: 5, loop: true }\n` +
        `mqtt: { url: ${broker.url}, base_topic: mem }\nstats_interval: 0\ncommands: { control: open }\n` +
        `updates:\n  manifest_url: ${nginx.url('/stable/manifest.json')}\n  public_keys: [${join(keys, 'release-key.pub.pem')}]\n  interval: 3600\n` +
        `  validation: { max_latency_factor: 1000 }\n`,
    );
    return config;
  }

  const modelGets = (): number => nginx.accessLog().split('\n').filter((l) => l.includes('GET /stable/model.onnx')).length;

  it('is refused and remembered after at most one lost process; the old model keeps serving', async () => {
    await release('1.0.0', 'hog.onnx');
    const config = writeConfig('hog');
    const sub = await MqttCollector.connect(broker.url, [`${ROOT}/#`]);
    const req = await Requester.connect(broker.url, ROOT);
    let lost = 0;
    const runs: string[] = [];
    let daemon: Started | undefined;
    try {
      // As systemd would: whenever the daemon dies, start it again (3 runs at most).
      for (let run = 1; run <= 3 && !refusal(sub.messages, '1.0.0'); run++) {
        const n = preds(sub.messages).length;
        daemon = startCli(['run', '--config', config], { cgroup: cgroup.path });
        await sub.waitFor((m) => preds(m).length > n, 30_000, `predictions (run ${run})`);
        // The daemon's own first check comes 5-15 s after start; ask now rather than wait.
        void req.send('update-check', {}, 60_000).catch(() => undefined);
        const died = daemon.finished.then((f) => f);
        const verdict = await Promise.race([
          died.then((f) => `died (${f.signal ?? `exit ${f.code}`})`),
          sub.waitFor((m) => refusal(m, '1.0.0') !== undefined, 60_000, 'the refusal of 1.0.0').then(() => 'refused'),
        ]);
        runs.push(`run ${run}: ${verdict}, OOM kills so far ${cgroup.oomKills()}`);
        if (verdict !== 'refused') {
          lost++;
          daemon = undefined;
        }
      }
      console.log(`memory limit ${LIMIT >> 20} MB, candidate needs 4096 MB: ${runs.join('; ')}; ${lost} daemon process(es) lost, ${cgroup.oomKills()} OOM kill(s) in the cgroup`);
      expect(refusal(sub.messages, '1.0.0'), runs.join('; ')).toMatch(/validation (failed|did not finish)/);
      expect(lost, runs.join('; ')).toBeLessThanOrEqual(1);
      expect(cgroup.oomKills(), 'the limit was really hit').toBeGreaterThanOrEqual(1);
      // A daemon still alive from the last run (or a fresh one): it serves the old model...
      daemon ??= startCli(['run', '--config', config], { cgroup: cgroup.path });
      const n = preds(sub.messages).length;
      await sub.waitFor((m) => preds(m).length > n + 3, 30_000, 'predictions after the refusal');
      expect(preds(sub.messages).slice(n).every((p) => (p.json as { model: { version: string } }).model.version !== '1.0.0')).toBe(true);
      // ...and does not download the refused release again.
      const gets = modelGets();
      const again = await req.send('update-check', {}, 30_000);
      expect((again.data as { outcome: { result: string } }).outcome.result).toMatch(/^(refused|not-modified)$/);
      expect(modelGets()).toBe(gets);
      expect(daemon.proc.exitCode).toBeNull();
      console.log(`refused 1.0.0: ${refusal(sub.messages, '1.0.0')}`);
    } finally {
      daemon?.proc.kill('SIGTERM');
      await daemon?.finished;
      await sub.close();
      await req.close();
    }
  }, 240_000);

  it('a daemon that dies while validating (SIGKILL) refuses that release at the next start', async () => {
    await release('2.0.0', 'slow.onnx');
    const config = writeConfig('kill');
    const sub = await MqttCollector.connect(broker.url, [`${ROOT}/#`]);
    const req = await Requester.connect(broker.url, ROOT);
    let daemon = startCli(['run', '--config', config]);
    try {
      await sub.waitFor((m) => preds(m).length > 0, 30_000, 'predictions');
      void req.send('update-check', {}, 60_000).catch(() => undefined);
      await sub.waitFor((m) => modelState(m)?.state === 'validating', 30_000, 'validating');
      await new Promise((r) => setTimeout(r, 1_000));
      daemon.proc.kill('SIGKILL');
      await daemon.finished;
      const state = JSON.parse(readFileSync(join(dir, 'state-kill', 'update-state.json'), 'utf8')) as { validating?: { version: string } };
      expect(state.validating?.version).toBe('2.0.0');

      daemon = startCli(['run', '--config', config]);
      await waitForLog(daemon, (l) => l.msg === 'daemon started', 30_000);
      await sub.waitFor((m) => refusal(m, '2.0.0') !== undefined, 10_000, 'the refusal of 2.0.0');
      expect(refusal(sub.messages, '2.0.0')).toBe('validation did not finish: the process died (out of memory?)');
      expect(modelState(sub.messages)).toMatchObject({ state: 'failed', target: '2.0.0', last_error: expect.stringMatching(/2\.0\.0.*validation did not finish/) });
      const gets = modelGets();
      const again = await req.send('update-check', {}, 30_000);
      expect((again.data as { outcome: { result: string } }).outcome.result).toMatch(/^(refused|not-modified)$/);
      expect(modelGets()).toBe(gets);
      const n = preds(sub.messages).length;
      await sub.waitFor((m) => preds(m).length > n + 2, 20_000, 'predictions by the old model');
    } finally {
      daemon.proc.kill('SIGTERM');
      await daemon.finished;
      await sub.close();
      await req.close();
    }
  }, 120_000);
});
