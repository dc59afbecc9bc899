import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Mosquitto } from '../helpers/mosquitto.js';
import { MqttCollector, type Received } from '../helpers/mqtt-collector.js';
import { Requester } from '../helpers/mqtt-request.js';
import { Nginx } from '../helpers/nginx.js';
import { runCli, startCli, type Started } from '../helpers/cli.js';
import { colourImage, tempDir } from '../helpers/fixtures.js';
import { buildDemoModel, demoLabels } from '../../src/modelgen/demo-model.js';
import { signManifest } from '../../src/updates/signing.js';

// The daemon against a token-protected release host (nginx answers 403 without ?token=x), and
// releases it must refuse once: a version longer than the model store holds (refused at the
// manifest check, nothing downloaded), and one the store cannot install (remembered, not
// downloaded again).

interface ModelState {
  state: string;
  installed: { version: string } | null;
  last_error: string | null;
  refused?: { version: string; reason: string }[];
}
interface Outcome {
  result: string;
  version?: string;
  reason?: string;
}

const ROOT = 'urls/dev';
const modelState = (m: Received[]): ModelState | undefined => m.filter((x) => x.topic === `${ROOT}/model`).at(-1)?.json as ModelState | undefined;

describe('update URLs with a query, and refusals that are remembered', () => {
  let broker: Mosquitto;
  let nginx: Nginx;
  let dir: string;
  let web: string;
  let keys: string;
  let config: string;
  let daemon: Started | undefined;
  let sub: MqttCollector;
  let req: Requester;

  /** Request lines nginx logged ("GET /signed/model.onnx?token=x" 200), in order. */
  const served = (): { path: string; status: number }[] =>
    [...readFileSync(join(nginx.prefix, 'access.log'), 'utf8').matchAll(/"GET (\S+) HTTP\/1\.[01]" (\d{3})/g)].map((m) => ({ path: m[1]!, status: Number(m[2]) }));

  async function publish(version: string): Promise<string> {
    const out = join(dir, `release-${version}`);
    const r = await runCli(['release', 'publish', '--model', join(dir, 'model.onnx'), '--labels', join(dir, 'labels.txt'), '--preset', 'imagenet',
      '--version', version, '--key', join(keys, 'release-key.pem'), '--out', out, '--validation', join(dir, 'validation')]);
    expect(r.code, r.stderr).toBe(0);
    rmSync(join(web, 'signed'), { recursive: true, force: true });
    cpSync(out, join(web, 'signed'), { recursive: true });
    return join(web, 'signed');
  }

  async function check(): Promise<Outcome> {
    const r = await req.send('update-check', {}, 60_000);
    expect(r.status, JSON.stringify(r)).toBe('ok');
    return (r.data as { outcome: Outcome }).outcome;
  }

  beforeAll(async () => {
    dir = tempDir();
    web = join(dir, 'www');
    mkdirSync(web);
    broker = await Mosquitto.start();
    nginx = await Nginx.start(web, { server: ['location /signed/ { if ($arg_token != "x") { return 403; } }'] });
    writeFileSync(join(dir, 'labels.txt'), demoLabels());
    writeFileSync(join(dir, 'served.onnx'), buildDemoModel());
    writeFileSync(join(dir, 'model.onnx'), buildDemoModel({ outputRank4: true }));
    mkdirSync(join(dir, 'validation'));
    mkdirSync(join(dir, 'frames'));
    writeFileSync(join(dir, 'validation', 'red.jpg'), await colourImage('red'));
    writeFileSync(join(dir, 'frames', 'red.jpg'), await colourImage('red'));
    keys = join(dir, 'keys');
    expect((await runCli(['release', 'keygen', '--out', keys])).code).toBe(0);
    config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      `device_id: dev\nstate_dir: ${join(dir, 'state')}\n` +
        `model: { path: ${join(dir, 'served.onnx')}, labels: ${join(dir, 'labels.txt')}, execution_providers: [cpu] }\n` +
        `cameras:\n  - id: cam\n    source: { type: directory, path: ${join(dir, 'frames')}, fps: 5, loop: true }\n` +
        `mqtt: { url: ${broker.url}, base_topic: urls }\nstats_interval: 0\ncommands: { control: open }\n` +
        `updates:\n  manifest_url: "${nginx.url('/signed/manifest.json?token=x')}"\n  public_keys: [${join(keys, 'release-key.pub.pem')}]\n  interval: 3600\n` +
        `  probation: { seconds: 1 }\n  validation: { max_latency_factor: 1000 }\n`,
    );
    await publish('1.0.0');
    sub = await MqttCollector.connect(broker.url, [`${ROOT}/#`]);
    req = await Requester.connect(broker.url, ROOT);
    daemon = startCli(['run', '--config', config]);
    await sub.waitFor((m) => m.some((x) => x.topic === `${ROOT}/cam/prediction`), 60_000, 'a first prediction');
    // The daemon's own first check (5-15 s after start) installs 1.0.0; the next one is an hour
    // away, so the checks below are the only ones.
    await sub.waitFor((m) => modelState(m)?.installed?.version === '1.0.0', 60_000, 'the first scheduled check installing 1.0.0');
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
    rmSync(dir, { recursive: true, force: true });
  });

  it('installs from a manifest URL with a token: .sig on the path, the token on every artifact', async () => {
    // The host really checks the token: without it, or with ".sig" glued onto it, 403.
    expect((await fetch(nginx.url('/signed/manifest.json'))).status).toBe(403);
    expect((await fetch(nginx.url('/signed/manifest.json?token=x.sig'))).status).toBe(403);
    // Installed by the scheduled check (beforeAll): a check now finds nothing new.
    expect(await check()).toMatchObject({ result: expect.stringMatching(/^(not-modified|up-to-date)$/) });
    const paths = served().map((s) => `${s.path} ${s.status}`);
    for (const p of ['manifest.json', 'manifest.json.sig', 'model.onnx', 'labels.txt', 'model.json', 'validation/red.jpg']) {
      expect(paths, p).toContain(`/signed/${p}?token=x 200`);
    }
    expect(served().filter((s) => s.status !== 200 && s.status !== 304 && !s.path.endsWith('?token=x.sig') && s.path !== '/signed/manifest.json'), 'daemon requests that failed').toEqual([]);
  });

  it('refuses a signed manifest whose version the store cannot hold, before downloading anything', async () => {
    const d = await publish('1.1.0');
    const manifest = JSON.parse(readFileSync(join(d, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    const long = `11${'.1'.repeat(63)}1`; // 129 characters of valid version grammar
    expect(long).toHaveLength(129);
    manifest.version = long;
    const bytes = Buffer.from(JSON.stringify(manifest));
    writeFileSync(join(d, 'manifest.json'), bytes);
    writeFileSync(join(d, 'manifest.json.sig'), `${signManifest(bytes, readFileSync(join(keys, 'release-key.pem'), 'utf8'))}\n`);
    const before = served().length;

    const outcome = await check();
    expect(outcome).toMatchObject({ result: 'refused', reason: 'invalid manifest: version: 129 characters, over the 128 the model store holds' });
    await sub.waitFor((m) => /version: 129 characters, over the 128 the model store holds/.test(modelState(m)?.last_error ?? ''), 10_000, 'B/D/model reason');
    // Only the manifest and its signature were fetched: no artifact.
    expect(served().slice(before).map((s) => s.path)).toEqual(['/signed/manifest.json?token=x', '/signed/manifest.json.sig?token=x']);
    expect(modelState(sub.messages)?.installed?.version).toBe('1.0.0');
  });

  it('remembers a release the model store cannot install, and does not download it again', async () => {
    await publish('2.0.0');
    // What the store finds where the version must go: a directory it did not write (no
    // .complete marker), which its commit rename cannot replace.
    mkdirSync(join(dir, 'state', 'models', '2.0.0'), { recursive: true });
    writeFileSync(join(dir, 'state', 'models', '2.0.0', 'stray.txt'), 'not a model');
    const before = served().length;

    const first = await check();
    expect(first).toMatchObject({ result: 'refused', version: '2.0.0', reason: expect.stringMatching(/^the model store cannot install 2\.0\.0: ENOTEMPTY/) });
    await sub.waitFor((m) => modelState(m)?.refused?.some((r) => r.version === '2.0.0') === true, 10_000, 'B/D/model refused 2.0.0');
    const fetched = served().slice(before).filter((s) => s.path.startsWith('/signed/model.onnx'));
    expect(fetched).toHaveLength(1);

    // A new ETag (the same release, touched): the manifest is fetched and checked again, and the
    // version is refused without downloading a byte of it.
    utimesSync(join(web, 'signed', 'manifest.json'), new Date(), new Date(Date.now() + 60_000));
    const mid = served().length;
    const second = await check();
    expect(second).toMatchObject({ result: 'refused', version: '2.0.0', reason: 'version 2.0.0 was refused earlier' });
    expect(served().slice(mid).map((s) => `${s.path} ${s.status}`)).toEqual(['/signed/manifest.json?token=x 200', '/signed/manifest.json.sig?token=x 200']);
    expect(modelState(sub.messages)?.installed?.version).toBe('1.0.0');
  });
});
