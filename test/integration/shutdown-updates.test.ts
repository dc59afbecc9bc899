import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { Mosquitto } from '../helpers/mosquitto.js';
import { MqttCollector, type Received } from '../helpers/mqtt-collector.js';
import { Requester } from '../helpers/mqtt-request.js';
import { Nginx } from '../helpers/nginx.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { runCli, startCli, waitForLog, type Started } from '../helpers/cli.js';
import { serveRelease } from '../helpers/releases.js';
import { findProcesses, procInfo } from '../helpers/processes.js';
import { freePort } from '../helpers/ports.js';
import { colourImage, tempDir } from '../helpers/fixtures.js';
import { buildDemoModel, demoLabels } from '../../src/modelgen/demo-model.js';
import { buildSlowModel } from '../../src/modelgen/test-models.js';

// One SIGTERM (what systemd sends) stops the daemon in every update state, within
// shutdown_timeout_ms and cleanly (exit 0; "stopped" where MQTT is up): still waiting for its
// first model with the manifest server unreachable (refused, or accepting and never answering),
// in the middle of a download from a slow server, and while a slow candidate is validated.

interface ModelState {
  state: string;
  progress: { bytes: number; total: number } | null;
}

const TIMEOUT_MS = 3000;
const ROOT = 'sdu/dev';
const modelState = (m: Received[]): ModelState | undefined => m.filter((x) => x.topic === `${ROOT}/model`).at(-1)?.json as ModelState | undefined;
const stopped = (m: Received[]): boolean => m.some((x) => x.topic === `${ROOT}/status` && (x.json as { state?: string } | undefined)?.state === 'stopped');

describe('SIGTERM in every update state', () => {
  let broker: Mosquitto;
  let nginx: Nginx;
  let proxy: FaultProxy;
  let silent: Server;
  let silentPort: number;
  const sockets: Socket[] = [];
  let dir: string;
  let keys: string;
  const times: string[] = [];

  beforeAll(async () => {
    dir = tempDir();
    mkdirSync(join(dir, 'www'));
    broker = await Mosquitto.start();
    nginx = await Nginx.start(join(dir, 'www'));
    // ~200 KB at 20 KB/s: a 10 s download.
    proxy = await FaultProxy.start(nginx.port, { bytesPerSecond: 20_000 });
    // A manifest server that accepts connections and never answers.
    silentPort = await freePort();
    silent = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(silentPort, '127.0.0.1', r));
    writeFileSync(join(dir, 'labels.txt'), demoLabels());
    writeFileSync(join(dir, 'a.onnx'), buildDemoModel());
    writeFileSync(join(dir, 'big.onnx'), buildSlowModel({ repeats: 2 }));
    // ~2.5 s per run on one thread: its validation (warm-up + 10 timed runs) lasts half a minute.
    writeFileSync(join(dir, 'slow.onnx'), buildSlowModel({ repeats: 8000 }));
    mkdirSync(join(dir, 'frames'));
    writeFileSync(join(dir, 'frames', 'red.jpg'), await colourImage('red'));
    keys = join(dir, 'keys');
    expect((await runCli(['release', 'keygen', '--out', keys])).code).toBe(0);
  });

  afterAll(async () => {
    console.log(`SIGTERM to exit (shutdown_timeout_ms ${TIMEOUT_MS}): ${times.join('; ')}`);
    for (const s of sockets) s.destroy();
    await new Promise((r) => silent?.close(r));
    await proxy?.stop();
    await nginx?.stop();
    await broker?.stop();
  });

  const release = (version: string, model: string): Promise<void> => serveRelease(dir, keys, version, model);

  function config(name: string, manifestUrl: string, model = true): string {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(
      file,
      `device_id: dev\nstate_dir: ${join(dir, `state-${name}`)}\nshutdown_timeout_ms: ${TIMEOUT_MS}\n` +
        `model: { ${model ? `path: ${join(dir, 'a.onnx')}, labels: ${join(dir, 'labels.txt')}, ` : ''}execution_providers: [cpu] }\n` +
        `cameras:\n  - id: cam\n    source: { type: directory, path: ${join(dir, 'frames')}, fps: 5, loop: true }\n` +
        `mqtt: { url: ${broker.url}, base_topic: sdu }\nstats_interval: 0\ncommands: { control: open }\n` +
        `updates:\n  manifest_url: ${manifestUrl}\n  public_keys: [${join(keys, 'release-key.pub.pem')}]\n  interval: 3600\n` +
        `  download: { timeout_ms: 30000 }\n  validation: { max_latency_factor: 1000 }\n`,
    );
    return file;
  }

  /** SIGTERM, and how long until the process is gone. */
  async function term(daemon: Started, what: string): Promise<{ code: number | null; ms: number }> {
    const t0 = performance.now();
    daemon.proc.kill('SIGTERM');
    const done = await daemon.finished;
    const ms = Math.round(performance.now() - t0);
    times.push(`${what}: ${ms} ms (exit ${done.code ?? done.signal})`);
    return { code: done.code, ms };
  }

  /** The daemon's validation processes (its children: other tests on the machine may validate too). */
  const validationChildren = (daemon: Started): number[] =>
    findProcesses((argv) => argv.some((a) => a.includes('validation-child')))
      .filter((p) => p.ppid === daemon.proc.pid)
      .map((p) => p.pid);

  it('waiting for a first model, the manifest server refusing connections or never answering', async () => {
    const cases: [string, string, (d: Started) => Promise<unknown>][] = [
      // Refused at once: it sleeps between attempts.
      ['first model, server refusing', `http://127.0.0.1:${await freePort()}/stable/manifest.json`, (d) => waitForLog(d, (l) => l.msg === 'no model installed yet; retrying', 30_000)],
      // Accepted and never answered: the manifest GET is in flight (30 s timeout).
      ['first model, server silent', `http://127.0.0.1:${silentPort}/stable/manifest.json`, async () => {
        const before = sockets.length;
        for (let i = 0; i < 600 && sockets.length === before; i++) await new Promise((r) => setTimeout(r, 50));
        expect(sockets.length, 'a connection to the silent server').toBeGreaterThan(before);
      }],
    ];
    for (const [what, url, ready] of cases) {
      const daemon = startCli(['run', '--config', config('first', url, false)]);
      try {
        await ready(daemon);
        await new Promise((r) => setTimeout(r, 300));
        expect(daemon.logs().some((l) => l.msg === 'daemon started')).toBe(false);
        const { code, ms } = await term(daemon, what);
        expect(code, daemon.stderr()).toBe(0);
        expect(ms).toBeLessThan(TIMEOUT_MS);
        expect(daemon.logs().some((l) => l.msg === 'shutting down while starting')).toBe(true);
      } finally {
        daemon.proc.kill('SIGKILL');
      }
    }
  });

  it('in the middle of a download from a slow server', async () => {
    await release('1.0.0', 'big.onnx');
    const sub = await MqttCollector.connect(broker.url, [`${ROOT}/#`]);
    const req = await Requester.connect(broker.url, ROOT);
    const daemon = startCli(['run', '--config', config('download', proxy.url('/stable/manifest.json'))]);
    try {
      await sub.waitFor((m) => m.some((x) => x.topic === `${ROOT}/cam/prediction`), 30_000, 'predictions');
      void req.send('update-check', {}, 60_000).catch(() => undefined);
      await sub.waitFor((m) => (modelState(m)?.progress?.bytes ?? 0) > 0, 30_000, 'download progress');
      expect(modelState(sub.messages)?.state).toBe('downloading');
      const { code, ms } = await term(daemon, 'mid-download');
      expect(code, daemon.stderr()).toBe(0);
      expect(ms).toBeLessThan(TIMEOUT_MS);
      await sub.waitFor(stopped, 2_000, '"stopped"');
    } finally {
      daemon.proc.kill('SIGKILL');
      await sub.close();
      await req.close();
    }
  });

  it('while a slow candidate is validated; nothing is refused and no validation process is left', async () => {
    await release('2.0.0', 'slow.onnx');
    const sub = await MqttCollector.connect(broker.url, [`${ROOT}/#`]);
    const req = await Requester.connect(broker.url, ROOT);
    const cfg = config('validate', nginx.url('/stable/manifest.json'));
    const daemon = startCli(['run', '--config', cfg]);
    try {
      await sub.waitFor((m) => m.some((x) => x.topic === `${ROOT}/cam/prediction`), 30_000, 'predictions');
      void req.send('update-check', {}, 60_000).catch(() => undefined);
      await sub.waitFor((m) => modelState(m)?.state === 'validating', 30_000, 'validating');
      await new Promise((r) => setTimeout(r, 2_000));
      const children = validationChildren(daemon);
      expect(children).toHaveLength(1);
      const { code, ms } = await term(daemon, 'mid-validation');
      expect(code, daemon.stderr()).toBe(0);
      expect(ms).toBeLessThan(TIMEOUT_MS);
      await sub.waitFor(stopped, 2_000, '"stopped"');
      expect(procInfo(children[0]!), 'the validation process is gone too').toBeUndefined();
      // Stopped, not failed: no refusal, no marker left to refuse it at the next start.
      const state = JSON.parse(readFileSync(join(dir, 'state-validate', 'update-state.json'), 'utf8')) as { validating?: unknown; refused: Record<string, unknown> };
      expect(state.validating).toBeUndefined();
      expect(state.refused['2.0.0']).toBeUndefined();
      expect(existsSync(join(dir, 'state-validate', 'tmp', '2.0.0', 'model.onnx'))).toBe(true);
    } finally {
      daemon.proc.kill('SIGKILL');
      await sub.close();
      await req.close();
    }
  }, 90_000);
});
