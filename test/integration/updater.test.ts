import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { Updater, type CheckOutcome } from '../../src/updates/updater.js';
import { ModelStore, type InstalledModel } from '../../src/updates/model-store.js';
import { Downloader } from '../../src/updates/downloader.js';
import { validateModel } from '../../src/updates/validator.js';
import { closeUpdatesClient, updatesFetch } from '../../src/updates/http-client.js';
import { signManifest } from '../../src/updates/signing.js';
import { UpdatesSchema } from '../../src/config/updates-schema.js';
import { createLogger } from '../../src/core/logger.js';
import { createSystemClock, type Clock } from '../../src/core/clock.js';
import type { ModelUpdatePayload } from '../../src/mqtt/payloads.js';
import { Nginx } from '../helpers/nginx.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { runCli } from '../helpers/cli.js';
import { serveRelease } from '../helpers/releases.js';
import { tempDir } from '../helpers/fixtures.js';
import { buildDemoModel, demoLabels } from '../../src/modelgen/demo-model.js';
import { buildSlowModel } from '../../src/modelgen/test-models.js';

// The Updater in process: releases built by `release publish`, served by a real nginx, downloaded
// by the real Downloader into a real ModelStore and checked by the real validator (its worker
// thread). Only `activate` (the daemon's swap) and `report` (B/D/model) are the test's. The
// updater's own clock is manual for its sleeps (the schedule between checks), so a test can see
// when the next check is due and let it come; everything else runs in real time.

const systemClock = createSystemClock();
const workerUrl = new URL('../../dist/inference/worker.js', import.meta.url);
const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

/** Real time; sleeps wait until the test wakes them (or the signal aborts). */
function sleepOnCue(): Clock & { pending(): number[]; wake(which: (ms: number) => boolean): number } {
  const sleepers = new Set<{ ms: number; wake: () => void }>();
  return {
    now: () => systemClock.now(),
    monotonic: () => systemClock.monotonic(),
    sleep: (ms, signal) =>
      new Promise<void>((resolve) => {
        if (signal?.aborted) return resolve();
        const s = { ms, wake: () => (sleepers.delete(s), resolve()) };
        sleepers.add(s);
        signal?.addEventListener('abort', s.wake, { once: true });
      }),
    pending: () => [...sleepers].map((s) => s.ms),
    wake: (which) => {
      const woken = [...sleepers].filter((s) => which(s.ms));
      for (const s of woken) s.wake();
      return woken.length;
    },
  };
}

async function until(pred: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const INTERVAL_S = 3600;

interface Made {
  updater: Updater;
  store: ModelStore;
  clock: ReturnType<typeof sleepOnCue>;
  reports: ModelUpdatePayload[];
  activated: InstalledModel[];
  logs: Record<string, unknown>[];
}

describe('Updater with nginx, the model store, the downloader and the validator', () => {
  let dir: string;
  let keys: string;
  let nginx: Nginx;
  const made: Made[] = [];

  async function makeUpdater(manifestUrl: string, stateDir: string): Promise<Made> {
    const logs: Record<string, unknown>[] = [];
    const logger = createLogger({ level: 'debug', stream: { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) } });
    const config = {
      ...UpdatesSchema.parse({ manifest_url: manifestUrl, interval: INTERVAL_S, download: { retries: 0, timeout_ms: 5000 } }),
      manifest_url: manifestUrl,
    };
    const store = new ModelStore({ logger, clock: systemClock, config: { ...config, state_dir: stateDir } });
    await store.start();
    const clock = sleepOnCue();
    const reports: ModelUpdatePayload[] = [];
    const activated: InstalledModel[] = [];
    const updater = new Updater({
      logger,
      clock,
      config,
      deviceId: 'dev',
      daemonVersion: '0.1.0',
      fetch: updatesFetch,
      publicKeys: [readFileSync(join(keys, 'release-key.pub.pem'), 'utf8')],
      providers: ['cpu'],
      store,
      downloader: new Downloader({ logger, clock: systemClock, fetch: updatesFetch, config: config.download }),
      validate: (req) => validateModel({ logger, clock: systemClock, workerUrl }, req),
      serving: () => undefined,
      activate: (m) => (activated.push(m), Promise.resolve()),
      report: (p) => void reports.push(structuredClone(p)),
      hasFallbackModel: true,
    });
    const m = { updater, store, clock, reports, activated, logs };
    made.push(m);
    return m;
  }

  /** `model` published as `version` (once: a version is published once) and served from `www`/stable. */
  async function publish(version: string, model: string, opts: { keys?: string; www?: string } = {}): Promise<void> {
    const release = join(dir, `rel-${version}`);
    if (!existsSync(release)) await serveRelease(dir, opts.keys ?? keys, version, model);
    const stable = join(opts.www ?? join(dir, 'www'), 'stable');
    rmSync(stable, { recursive: true, force: true });
    cpSync(release, stable, { recursive: true });
  }

  beforeAll(async () => {
    dir = tempDir('ec-updater-');
    mkdirSync(join(dir, 'www'));
    writeFileSync(join(dir, 'labels.txt'), demoLabels());
    writeFileSync(join(dir, 'a.onnx'), buildDemoModel());
    writeFileSync(join(dir, 'b.onnx'), buildDemoModel({ outputRank4: true })); // same answers, other bytes
    writeFileSync(join(dir, 'big.onnx'), buildSlowModel({ repeats: 2 }));
    keys = join(dir, 'keys');
    expect((await runCli(['release', 'keygen', '--out', keys])).code).toBe(0);
    expect((await runCli(['release', 'keygen', '--out', join(dir, 'other-keys')])).code).toBe(0);
    nginx = await Nginx.start(join(dir, 'www'));
  });

  afterAll(async () => {
    for (const m of made) await m.updater.stop();
    await nginx?.stop();
    await closeUpdatesClient();
  });

  const manifestUrl = (): string => nginx.url('/stable/manifest.json');
  const served = (file: string): number => nginx.accessLog().split('\n').filter((l) => l.includes(`GET /stable/${file} `)).length;

  it('installs a new signed release: downloaded, validated by the real validator, installed and activated', async () => {
    await publish('1.0.0', 'a.onnx');
    const { updater, store, reports, activated } = await makeUpdater(manifestUrl(), join(dir, 'state-install'));
    const outcome = await updater.checkNow();
    expect(outcome).toEqual({ result: 'installed', version: '1.0.0' });
    expect(activated.map((m) => m.version)).toEqual(['1.0.0']);
    const current = await store.current();
    expect(current?.version).toBe('1.0.0');
    expect(sha256(current!.modelPath)).toBe(sha256(join(dir, 'a.onnx')));
    expect(activated[0]!.modelPath).toBe(current!.modelPath);
    // Each step on B/D/model, in order, ending in probation with the release installed.
    const steps = reports.map((r) => r.state).filter((s, i, all) => s !== all[i - 1]);
    expect(steps).toEqual(['checking', 'downloading', 'validating', 'activating', 'probation']);
    expect(updater.payload).toMatchObject({ state: 'probation', installed: { version: '1.0.0', sha256: sha256(join(dir, 'a.onnx')) }, last_error: null });
  });

  it('a check that finds nothing new downloads nothing and activates nothing', async () => {
    await publish('1.0.0', 'a.onnx');
    const state = join(dir, 'state-nothing-new');
    const first = await makeUpdater(manifestUrl(), state);
    expect(await first.updater.checkNow()).toMatchObject({ result: 'installed', version: '1.0.0' });
    await first.updater.stop();
    const models = served('model.onnx');

    // The next daemon start: the same state, no etag yet.
    const { updater, activated, reports } = await makeUpdater(manifestUrl(), state);
    await updater.start();
    expect(await updater.checkNow()).toEqual({ result: 'up-to-date', version: '1.0.0' });
    // Now with the etag of that manifest: nginx answers 304.
    expect(await updater.checkNow()).toEqual({ result: 'not-modified' });
    expect(activated).toEqual([]);
    expect(served('model.onnx')).toBe(models);
    expect(reports.at(-1)).toMatchObject({ installed: { version: '1.0.0' }, last_error: null });
  });

  it('a manifest signed by an untrusted key is refused before anything in it is used, and the refusal is remembered', async () => {
    await publish('2.0.0', 'b.onnx', { keys: join(dir, 'other-keys') });
    const state = join(dir, 'state-bad-sig');
    const { updater, store, activated } = await makeUpdater(manifestUrl(), state);
    const models = served('model.onnx');
    const outcome = await updater.checkNow();
    expect(outcome.result).toBe('failed');
    expect(outcome.reason).toMatch(/signature does not match any trusted key/);
    expect(served('model.onnx')).toBe(models); // not one artifact fetched
    expect(activated).toEqual([]);
    expect(await store.current()).toBeUndefined();
    expect(updater.payload).toMatchObject({ state: 'failed', installed: null, last_error: expect.stringMatching(/signature/) });
    // In the state file: a daemon started again still reports why the last check failed.
    const again = await makeUpdater(manifestUrl(), state);
    expect(again.store.snapshot().lastCheck?.result).toMatch(/^failed: .*signature does not match any trusted key/);
    // An unsigned claim is not trusted even to name a version to refuse: nothing is on the refused list.
    expect(again.store.snapshot().refused).toEqual({});
  });

  it('a signed release the validator refuses is remembered: not downloaded or validated again, not even after a restart', async () => {
    await publish('3.0.0', 'a.onnx');
    // The publisher's labels replaced by a list that does not fit the model's output, and re-signed.
    const stable = join(dir, 'www', 'stable');
    const labels = Buffer.from('only\ntwo\n');
    writeFileSync(join(stable, 'labels.txt'), labels);
    const manifest = JSON.parse(readFileSync(join(stable, 'manifest.json'), 'utf8')) as { artifacts: { labels: { size: number; sha256: string } } };
    manifest.artifacts.labels.size = labels.length;
    manifest.artifacts.labels.sha256 = createHash('sha256').update(labels).digest('hex');
    const bytes = Buffer.from(JSON.stringify(manifest));
    writeFileSync(join(stable, 'manifest.json'), bytes);
    writeFileSync(join(stable, 'manifest.json.sig'), `${signManifest(bytes, readFileSync(join(keys, 'release-key.pem'), 'utf8'))}\n`);

    const state = join(dir, 'state-refused');
    const first = await makeUpdater(manifestUrl(), state);
    const outcome = await first.updater.checkNow();
    expect(outcome).toMatchObject({ result: 'refused', version: '3.0.0', reason: expect.stringMatching(/^validation failed: .*label/) });
    console.log(`refused by the validator: ${outcome.reason}`);
    expect(first.activated).toEqual([]);
    expect(first.store.isRefused('3.0.0')).toBe(true);
    expect(first.updater.payload.refused).toEqual([{ version: '3.0.0', reason: outcome.reason }]);
    await first.updater.stop();

    const models = served('model.onnx');
    const again = await makeUpdater(manifestUrl(), state);
    expect(await again.updater.checkNow()).toEqual({ result: 'refused', version: '3.0.0', reason: 'version 3.0.0 was refused earlier' });
    expect(served('model.onnx')).toBe(models);
    expect(again.reports.map((r) => r.state).filter((st) => st === 'downloading' || st === 'validating')).toEqual([]);
  });

  it('an unreachable manifest (nginx stopped) is reported, and tried again at the next interval', async () => {
    // An nginx of its own, to stop and start again on the same port.
    const www = join(dir, 'www-outage');
    mkdirSync(www);
    await publish('1.0.0', 'a.onnx', { www });
    let own = await Nginx.start(www);
    const port = own.port;
    const url = own.url('/stable/manifest.json');
    const { updater, clock, reports, activated, store } = await makeUpdater(url, join(dir, 'state-outage'));
    try {
      expect(await updater.checkNow()).toMatchObject({ result: 'installed', version: '1.0.0' });
      await own.stop();

      await updater.start();
      // The first scheduled check comes after a short jitter (a model is installed).
      await until(() => clock.pending().some((ms) => ms >= 5_000 && ms <= 15_000), 10_000, 'the first check to be scheduled');
      const before = reports.length;
      clock.wake((ms) => ms <= 15_000);
      await until(() => reports.slice(before).some((r) => r.state === 'failed'), 30_000, 'the failure on B/D/model');
      const failed = reports.slice(before).find((r) => r.state === 'failed')!;
      expect(failed.last_error).toMatch(/ECONNREFUSED|fetch failed|connect/i);
      expect(failed.installed?.version).toBe('1.0.0'); // the installed model is untouched
      expect(store.snapshot().lastCheck?.result).toMatch(/^failed: /);
      // The next check is one interval (plus up to 10% jitter) away, not sooner.
      await until(() => clock.pending().some((ms) => ms >= INTERVAL_S * 1000), 10_000, 'the next check to be scheduled');
      const next = clock.pending().find((ms) => ms >= INTERVAL_S * 1000)!;
      expect(next).toBeLessThanOrEqual(INTERVAL_S * 1000 * 1.1);

      // nginx is back, with a newer release: the next check (when the interval is up) installs it.
      await publish('1.1.0', 'b.onnx', { www });
      own = await Nginx.start(www, { port });
      expect(clock.wake((ms) => ms === next)).toBe(1);
      await until(() => updater.payload.state === 'probation' && updater.payload.installed?.version === '1.1.0', 60_000, '1.1.0 installed by the retry');
      expect(activated.map((m) => m.version)).toEqual(['1.0.0', '1.1.0']);
      expect(updater.payload.last_error).toBeNull(); // the outage's error is over
    } finally {
      await updater.stop();
      await own.stop();
    }
  });

  it('stop() during a slow download returns without waiting for it, and nothing is installed', async () => {
    await publish('4.0.0', 'big.onnx');
    const size = readFileSync(join(dir, 'big.onnx')).length;
    // At 4 KB/s the model alone takes far longer than this test's limit.
    const proxy = await FaultProxy.start(nginx.port, { bytesPerSecond: 4_000 });
    try {
      expect(size / 4_000).toBeGreaterThan(40);
      const { updater, store, activated, reports } = await makeUpdater(proxy.url('/stable/manifest.json'), join(dir, 'state-stop'));
      let outcome: CheckOutcome | undefined;
      const check = updater.checkNow().then((o) => (outcome = o));
      await until(() => reports.some((r) => r.state === 'downloading' && (r.progress?.bytes ?? 0) > 0), 30_000, 'download progress');
      expect(proxy.requests.some((r) => r.path === '/stable/model.onnx')).toBe(true);
      await updater.stop();
      await check;
      expect(outcome?.result).toBe('failed');
      expect(activated).toEqual([]);
      expect(await store.current()).toBeUndefined();
      const partial = join(store.tmpDir, '4.0.0', 'model.onnx');
      // Whatever was kept for a resume is short of the whole file.
      if (existsSync(partial)) expect(readFileSync(partial).length).toBeLessThan(size);
    } finally {
      await proxy.stop();
    }
  }, 40_000);
});
