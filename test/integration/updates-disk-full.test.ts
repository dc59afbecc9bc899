import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { pino } from 'pino';
import { createSystemClock } from '../../src/core/clock.js';
import { Downloader, DownloadError } from '../../src/updates/downloader.js';
import { buildSlowModel } from '../../src/modelgen/test-models.js';
import { demoLabels } from '../../src/modelgen/demo-model.js';
import { Mosquitto } from '../helpers/mosquitto.js';
import { MqttCollector, type Received } from '../helpers/mqtt-collector.js';
import { Requester } from '../helpers/mqtt-request.js';
import { Nginx } from '../helpers/nginx.js';
import { runCli, startCli, type Started } from '../helpers/cli.js';
import { colourImage, tempDir } from '../helpers/fixtures.js';

// A full disk during an update, on a real small tmpfs (mounted by the test: root here and in
// CI). A download that hits ENOSPC must give the space back (its partial files go instead of
// being kept for a resume), say so on B/D/model, leave every other writer in state_dir working,
// and install the release by itself at the next check once there is room.

const MiB = 1024 * 1024;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const free = (dir: string): number => {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
};

/** A tmpfs of `size` at `dir`; fails (never skips) when it cannot be mounted. */
function mountTmpfs(dir: string, size: string): void {
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`this test needs a real small tmpfs: \`mount -t tmpfs -o size=${size} tmpfs ${dir}\` failed (run as root): ${e.stderr?.toString().trim() || e.message}`);
  }
}
const remount = (dir: string, size: string): void => void execFileSync('mount', ['-o', `remount,size=${size}`, dir], { stdio: 'pipe' });
const unmount = (dir: string): void => {
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  } catch {
    // not mounted (the mount failed, or the test already unmounted it)
  }
};

describe('downloader on a full disk', () => {
  let www: string;
  let nginx: Nginx;
  let disk: string;
  const big = randomBytes(12 * MiB);

  beforeAll(async () => {
    www = tempDir('ec-full-www-');
    writeFileSync(join(www, 'big.onnx'), big);
    nginx = await Nginx.start(www);
    disk = join(tempDir('ec-full-'), 'disk');
    mountTmpfs(disk, '8m');
  });
  afterAll(async () => {
    unmount(disk);
    await nginx?.stop();
    rmSync(www, { recursive: true, force: true });
  });

  it('removes the partial file at ENOSPC (the space is back), then downloads once there is room', async () => {
    const d = new Downloader({ logger: pino({ level: 'silent' }), clock: createSystemClock(), config: { timeout_ms: 5000, retries: 3, backoff: { base_ms: 10, max_ms: 50 } } });
    const req = { url: nginx.url('big.onnx'), size: big.length, sha256: sha(big), dest: join(disk, 'dl', 'big.onnx') };
    mkdirSync(join(disk, 'dl'));
    const before = free(disk);
    const err = (await d.download(req).catch((e: unknown) => e)) as DownloadError;
    expect(err).toBeInstanceOf(DownloadError);
    expect(err.reason).toBe('disk-full');
    expect(err.retryable).toBe(false); // no retries into a full disk
    expect(err.message).toMatch(/big\.onnx: ENOSPC: no space left on device/);
    expect(readdirSync(join(disk, 'dl'))).toEqual([]);
    expect(free(disk)).toBe(before);

    remount(disk, '16m');
    const res = await d.download(req);
    expect(res).toMatchObject({ attempts: 1, fetchedBytes: big.length, resumedFrom: 0 });
    expect(sha(readFileSync(req.dest))).toBe(sha(big));
  });
});

interface ModelState {
  state: string;
  installed: { version: string } | null;
  last_error: string | null;
  last_check: string | null;
}
const ROOT = 'full/dev';
const modelState = (m: Received[]): ModelState | undefined => m.filter((x) => x.topic === `${ROOT}/model`).at(-1)?.json as ModelState | undefined;
const predictions = (m: Received[]): number => m.filter((x) => x.topic === `${ROOT}/cam/prediction`).length;

describe('daemon with state_dir on a full disk', () => {
  let broker: Mosquitto;
  let nginx: Nginx;
  let dir: string;
  let state: string;
  let daemon: Started | undefined;
  let sub: MqttCollector;
  let req: Requester;

  beforeAll(async () => {
    dir = tempDir('ec-full-daemon-');
    state = join(dir, 'state');
    mountTmpfs(state, '8m');
    mkdirSync(join(dir, 'www'));
    broker = await Mosquitto.start();
    nginx = await Nginx.start(join(dir, 'www'));
    writeFileSync(join(dir, 'labels.txt'), demoLabels());
    writeFileSync(join(dir, 'served.onnx'), buildSlowModel({ repeats: 2 }));
    writeFileSync(join(dir, 'release.onnx'), buildSlowModel({ repeats: 3 }));
    // Validation images of ~2.4 MB each (noise compresses badly): a release of ~10 MB, more
    // than the 8 MiB state_dir holds.
    mkdirSync(join(dir, 'validation'));
    for (let i = 0; i < 4; i++) {
      const img = await sharp({ create: { width: 1600, height: 1600, channels: 3, background: { r: 128, g: 128, b: 128 }, noise: { type: 'gaussian', mean: 128, sigma: 60 } } }).jpeg({ quality: 95 }).toBuffer();
      writeFileSync(join(dir, 'validation', `noise-${i}.jpg`), img);
    }
    mkdirSync(join(dir, 'frames'));
    writeFileSync(join(dir, 'frames', 'red.jpg'), await colourImage('red'));
    expect((await runCli(['release', 'keygen', '--out', join(dir, 'keys')])).code).toBe(0);
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      `device_id: dev\nstate_dir: ${state}\n` +
        `model: { path: ${join(dir, 'served.onnx')}, labels: ${join(dir, 'labels.txt')}, execution_providers: [cpu] }\n` +
        `cameras:\n  - id: cam\n    source: { type: directory, path: ${join(dir, 'frames')}, fps: 5, loop: true }\n` +
        `mqtt: { url: ${broker.url}, base_topic: full }\nstats_interval: 0\ncommands: { control: open }\n` +
        `updates:\n  manifest_url: ${nginx.url('/stable/manifest.json')}\n  public_keys: [${join(dir, 'keys', 'release-key.pub.pem')}]\n  interval: 3600\n` +
        `  probation: { seconds: 1 }\n  validation: { max_latency_factor: 1000 }\n`,
    );
    sub = await MqttCollector.connect(broker.url, [`${ROOT}/#`]);
    req = await Requester.connect(broker.url, ROOT);
    daemon = startCli(['run', '--config', config]);
    await sub.waitFor((m) => predictions(m) > 0, 60_000, 'a first prediction');
    // The daemon's first scheduled check (5-15 s after start) finds no release yet (404); the
    // next one is an hour away, so the checks below are the only ones.
    await sub.waitFor((m) => modelState(m)?.last_check != null, 60_000, 'the first scheduled check');
  });

  afterAll(async () => {
    if (daemon) {
      daemon.proc.kill('SIGTERM');
      await daemon.finished;
    }
    await sub?.close();
    await req?.close();
    await nginx?.stop();
    await broker?.stop();
    unmount(state);
    rmSync(dir, { recursive: true, force: true });
  });

  it('a release bigger than the free space: partials removed, the error on B/D/model, other writes work; installed once there is room', async () => {
    const out = join(dir, 'release');
    const pub = await runCli(['release', 'publish', '--model', join(dir, 'release.onnx'), '--labels', join(dir, 'labels.txt'), '--preset', 'imagenet',
      '--version', '2.0.0', '--key', join(dir, 'keys', 'release-key.pem'), '--out', out, '--validation', join(dir, 'validation')]);
    expect(pub.code, pub.stderr).toBe(0);
    cpSync(out, join(dir, 'www', 'stable'), { recursive: true });
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as { artifacts: Record<string, { size: number } | { size: number }[]> };
    const total = Object.values(manifest.artifacts).flat().reduce((s, a) => s + a.size, 0);
    const before = free(state);
    expect(total, 'the release must not fit').toBeGreaterThan(before);

    const r = await req.send('update-check', {}, 60_000);
    const outcome = (r.data as { outcome: { result: string; reason?: string } }).outcome;
    expect(outcome.result).toBe('failed');
    expect(outcome.reason).toMatch(new RegExp(`^disk full \\(ENOSPC\\): release 2\\.0\\.0 needs ${total} bytes \\([\\d.]+ MiB\\) in ${state}/tmp, \\d+ bytes \\([\\d.]+ [KM]iB\\) free; its partial downloads were removed, the next check tries again$`));
    await sub.waitFor((m) => /^disk full \(ENOSPC\)/.test(modelState(m)?.last_error ?? ''), 10_000, 'B/D/model disk-full error');
    expect(modelState(sub.messages)).toMatchObject({ state: 'failed', installed: null });
    // The space is back: nothing of the release is left in tmp/.
    expect(existsSync(join(state, 'tmp', '2.0.0'))).toBe(false);
    const after = free(state);
    console.log(`disk full: release ${total} bytes, free before ${before}, after ${after}; B/D/model: ${modelState(sub.messages)?.last_error}`);
    expect(Math.abs(after - before)).toBeLessThanOrEqual(64 * 1024); // the daemon's own small writes

    // Other writes into state_dir work: the settings (runtime.json) and the MQTT path.
    const set = await req.send('set', { top_k: 2 });
    expect(set.status, JSON.stringify(set)).toBe('ok');
    expect(JSON.parse(readFileSync(join(state, 'runtime.json'), 'utf8'))).toMatchObject({ top_k: 2 });
    const n = predictions(sub.messages);
    await sub.waitFor((m) => predictions(m) > n + 2, 10_000, 'predictions after the failure');

    // Room: the next check installs it, by itself.
    remount(state, '32m');
    const again = await req.send('update-check', {}, 90_000);
    expect(again.data, JSON.stringify(again)).toMatchObject({ outcome: { result: 'installed', version: '2.0.0' } });
    await sub.waitFor((m) => modelState(m)?.installed?.version === '2.0.0' && modelState(m)?.last_error === null, 20_000, 'B/D/model installed 2.0.0, no error');
  });
});
