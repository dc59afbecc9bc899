import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import sharp from 'sharp';
import { startCli, waitForLog, type Started } from '../helpers/cli.js';
import { freePort } from '../helpers/ports.js';
import { tempDir, writeColourModel } from '../helpers/fixtures.js';
import { parsePrometheus, samples, value } from '../helpers/prometheus.js';
import { connectSse, until } from '../helpers/sse-client.js';
import { DEMO_PALETTE } from '../../src/camera/palette.js';

// The daemon's HTTP server as an operator meets it: the built CLI with a YAML config, a
// synthetic camera and the generated colour model, the embedded broker, and plain fetch.

const COLOURS = DEMO_PALETTE.map((c) => c.name);

interface Setup {
  dir: string;
  model: string;
  labels: string;
}

let setup: Setup;

beforeAll(() => {
  const dir = tempDir('ec-http-');
  const { model, labels } = writeColourModel(join(dir, 'model'));
  setup = { dir, model, labels };
});

async function writeConfig(name: string, cameras: string, http: string): Promise<string> {
  const path = join(setup.dir, `${name}.yaml`);
  writeFileSync(
    path,
    `device_id: http-it
model: { path: ${setup.model}, labels: ${setup.labels}, preset: imagenet, execution_providers: [cpu] }
cameras:
${cameras}
mqtt: { url: embedded, embedded: { host: 127.0.0.1, port: ${await freePort()} } }
publish: { top_k: 3 }
http: ${http}
state_dir: ${join(setup.dir, `state-${name}`)}
stats_interval: 0
`,
  );
  return path;
}

const SYNTHETIC = '  - id: cam1\n    source: { type: synthetic, fps: 4, width: 320, height: 240 }';
const BROKEN = `  - id: broken\n    source: { type: directory, path: /nonexistent/edge-classifier-frames, fps: 1 }`;

let daemon: Started | undefined;

afterEach(() => {
  daemon?.proc.kill('SIGKILL');
  daemon = undefined;
});

async function startDaemon(config: string): Promise<{ daemon: Started; url: string }> {
  daemon = startCli(['run', '--config', config]);
  const line = await waitForLog(daemon, (l) => l.msg === 'HTTP server listening', 30_000);
  return { daemon, url: String(line.url) };
}

async function stopCleanly(d: Started): Promise<void> {
  d.proc.kill('SIGTERM');
  const done = await d.finished;
  expect(done.code, done.stderr).toBe(0);
}

describe('HTTP server of the daemon', () => {
  it('is live but not ready while no camera delivers frames, and says why', async () => {
    const { daemon: d, url } = await startDaemon(await writeConfig('broken', BROKEN, '{ port: 0 }'));
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const health = await fetch(`${url}healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', uptime_s: expect.any(Number) });

    await waitForLog(d, (l) => l.msg === 'daemon started', 30_000);
    const ready = await fetch(`${url}readyz`);
    expect(ready.status).toBe(503);
    const body = (await ready.json()) as { ready: boolean; model: { loaded: boolean }; failing: string[] };
    expect(body.ready).toBe(false);
    expect(body.model.loaded).toBe(true);
    expect(body.failing).toEqual([expect.stringMatching(/^no camera online: broken (offline|starting)/)]);

    const snap = await fetch(`${url}snapshot/broken.jpg`);
    expect(snap.status).toBe(503);
    expect(await snap.json()).toEqual({ error: 'camera broken has no frame yet' });
    const e = parsePrometheus(await (await fetch(`${url}metrics`)).text());
    expect(value(e, 'edge_classifier_camera_up', { camera: 'broken' })).toBe(0);
    expect(value(e, 'edge_classifier_ready')).toBe(0);
    await stopCleanly(d);
  });

  it('serves health, readiness, metrics and snapshots, and stops cleanly with an event stream open', async () => {
    const { daemon: d, url } = await startDaemon(await writeConfig('main', `${SYNTHETIC}\n${BROKEN}`, '{ port: 0 }'));

    await until(async () => (await fetch(`${url}readyz`)).status === 200, '/readyz 200');
    const ready = (await (await fetch(`${url}readyz`)).json()) as { cameras: { online: string[]; total: number } };
    expect(ready.cameras).toEqual({ online: ['cam1'], total: 2 });

    // Some frames classified, so the counters and histograms have something in them.
    const scrape = async () => parsePrometheus(await (await fetch(`${url}metrics`)).text());
    await until(async () => value(await scrape(), 'edge_classifier_frames_classified_total', { camera: 'cam1' }) >= 4, '4 classified frames');

    const res = await fetch(`${url}metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const e = parsePrometheus(await res.text());
    const cam = { camera: 'cam1' };
    const classified = value(e, 'edge_classifier_frames_classified_total', cam);
    expect(classified).toBeGreaterThanOrEqual(4);
    expect(value(e, 'edge_classifier_frames_captured_total', cam)).toBeGreaterThanOrEqual(classified);
    expect(samples(e, 'edge_classifier_frames_errored_total', cam).map((s) => s.labels.stage).sort()).toEqual(['capture', 'decode', 'inference']);
    const errored = (camera: string, stage: string) => value(e, 'edge_classifier_frames_errored_total', { camera, stage });
    expect(['capture', 'decode', 'inference'].map((stage) => errored('cam1', stage))).toEqual([0, 0, 0]);
    // Every captured frame is accounted for: classified, dropped, errored, or still on its way
    // (one waiting in the slot, one being decoded or decoded, one in inference).
    const dropped = value(e, 'edge_classifier_frames_dropped_total', cam);
    const inFlight = value(e, 'edge_classifier_frames_captured_total', cam) - classified - dropped;
    expect(inFlight).toBeGreaterThanOrEqual(0);
    expect(inFlight).toBeLessThanOrEqual(3);
    // The missing directory: its first listing failed at once, and is retried (1 s, 2 s, ...).
    expect(errored('broken', 'capture')).toBeGreaterThanOrEqual(1);
    expect(value(e, 'edge_classifier_frames_captured_total', { camera: 'broken' })).toBe(0);
    for (const h of ['preprocess', 'inference', 'end_to_end']) {
      expect(e.types.get(`edge_classifier_${h}_seconds`)).toBe('histogram');
      const count = value(e, `edge_classifier_${h}_seconds_count`, cam);
      // Every classified frame is observed; the scrape may see a frame or two more than the counter did.
      expect(count).toBeGreaterThanOrEqual(classified);
      expect(value(e, `edge_classifier_${h}_seconds_sum`, cam)).toBeGreaterThan(0);
      expect(value(e, `edge_classifier_${h}_seconds_bucket`, { ...cam, le: '+Inf' })).toBe(count);
    }
    expect(value(e, 'edge_classifier_camera_up', cam)).toBe(1);
    expect(value(e, 'edge_classifier_camera_up', { camera: 'broken' })).toBe(0);
    expect(value(e, 'edge_classifier_mqtt_connected')).toBe(1);
    // The embedded broker acknowledges at once: the queue holds a message or two in flight at
    // most, and drains between frames.
    expect(value(e, 'edge_classifier_mqtt_queued_messages')).toBeLessThanOrEqual(5);
    await until(async () => value(await scrape(), 'edge_classifier_mqtt_queued_messages') === 0, 'an empty MQTT queue');
    expect(value(e, 'edge_classifier_mqtt_dropped_messages_total')).toBe(0);
    expect(value(e, 'edge_classifier_mqtt_sent_messages_total')).toBeGreaterThan(0);
    const info = samples(e, 'edge_classifier_model_info');
    expect(info).toHaveLength(1);
    expect(info[0]!.value).toBe(1);
    expect(info[0]!.labels).toMatchObject({ name: 'colors', provider: 'cpu', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(info[0]!.labels.sha256!.startsWith(info[0]!.labels.version!)).toBe(true); // default version: the sha256 prefix
    expect(value(e, 'edge_classifier_update_state', { state: 'disabled' })).toBe(1);
    expect(value(e, 'edge_classifier_ready')).toBe(1);
    expect(value(e, 'process_resident_memory_bytes')).toBeGreaterThan(20 * 2 ** 20);
    expect(value(e, 'nodejs_eventloop_lag_p99_seconds')).toBeGreaterThan(0);

    const snap = await fetch(`${url}snapshot/cam1.jpg`);
    expect(snap.status).toBe(200);
    expect(snap.headers.get('content-type')).toBe('image/jpeg');
    expect(snap.headers.get('cache-control')).toBe('no-store');
    expect(Number(snap.headers.get('x-frame-seq'))).toBeGreaterThan(0);
    const meta = await sharp(Buffer.from(await snap.arrayBuffer())).metadata();
    expect(meta).toMatchObject({ format: 'jpeg', width: 320, height: 240 });
    expect((await fetch(`${url}snapshot/nope.jpg`)).status).toBe(404);
    expect((await fetch(`${url}no/such/page`)).status).toBe(404);
    const post = await fetch(`${url}metrics`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');

    const page = await fetch(url);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(await page.text()).toContain('new EventSource(');

    // The event stream: the status, then frames whose top label is the painted colour.
    const sse = await connectSse(`${url}events`);
    expect(sse.res.statusCode).toBe(200);
    await until(() => sse.events().filter((x) => x.event === 'frame').length >= 3, '3 frame events');
    const status = sse.events().find((x) => x.event === 'status')?.data;
    expect(status).toMatchObject({ device: 'http-it', ready: true, mqtt: { connected: true }, model: { name: 'colors', provider: 'cpu' } });
    const frames = sse.events().filter((x) => x.event === 'frame').map((x) => x.data as { camera: string; source: string; top: { label: string }[]; latency_ms: { inference: number } });
    for (const f of frames) {
      expect(f.camera).toBe('cam1');
      // Five bars although MQTT publishes top 3.
      expect(f.top).toHaveLength(5);
      expect(COLOURS).toContain(f.top[0]!.label);
      expect(f.source).toBe(`synthetic:${f.top[0]!.label}`);
      expect(f.latency_ms.inference).toBeGreaterThan(0);
    }

    // Shutdown with the stream open must not hang on it (exit 0 means within shutdown_timeout_ms).
    await stopCleanly(d);
    await sse.closed;
    expect(d.logs().filter((l) => l.msg === 'shutdown took too long; exiting anyway')).toEqual([]);
  });

  it('keeps classifying when its port is taken, with an error naming http.port', async () => {
    const squatter: Server = createServer();
    await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
    const port = (squatter.address() as AddressInfo).port;
    try {
      daemon = startCli(['run', '--config', await writeConfig('busy', SYNTHETIC, `{ port: ${port} }`)]);
      const err = await waitForLog(daemon, (l) => l.module === 'http' && l.level === 50, 30_000);
      expect(err.err).toBe(`http.port: 127.0.0.1:${port} is already in use (another edge-classifier or another program); set http.port to a free port, or http.enabled: false`);
      await waitForLog(daemon, (l) => l.msg === 'camera online', 30_000);
      await waitForLog(daemon, (l) => l.msg === 'daemon started', 30_000);
      await stopCleanly(daemon);
    } finally {
      squatter.close();
    }
  });
});
