import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../core/logger.js';
import type { Clock } from '../../core/clock.js';
import type { HttpConfig } from '../../config/http-schema.js';
import type { ClassifiedFrame } from '../../daemon/pipeline.js';
import { readiness, type DaemonView } from './daemon-view.js';
import { AccessGate } from './access-gate.js';
import { loadCredentials } from './auth-files.js';
import { HttpAuth } from './http-auth.js';
import { createDaemonMetrics, type DaemonMetrics } from './metrics.js';
import { HttpListener } from './listener.js';
import { PreviewFeed } from './preview-feed.js';
import { PREVIEW_CSP, PREVIEW_HTML } from './preview-page.js';
import { matchRoute, type Route } from './routes.js';
import { SnapshotCache } from './snapshots.js';
import { SseHub } from './sse.js';

export interface OpsHttpDeps {
  logger: Logger;
  clock: Clock;
  config: HttpConfig;
  device: string;
  version: string;
  view: DaemonView;
}

/** Labels shown as bars on the preview page (the pipeline is asked for at least this many). */
export const PREVIEW_TOP = 5;
// A few updates a second per camera are plenty to aim a camera; a 30 fps one would flood the page.
const FRAME_EVENT_INTERVAL_MS = 250;
const STATUS_INTERVAL_MS = 1_000;
const HEARTBEAT_MS = 15_000;
const RETRY_MS = 2_000;

const COMMON_HEADERS = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { ...COMMON_HEADERS, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/**
 * The daemon's HTTP side: /healthz, /readyz, /metrics, /snapshot/CAMERA.jpg, the preview page
 * and its event stream. A lifecycle part; it only reads the daemon (DaemonView) and is told
 * about classified frames (observe), so it can never hold the pipeline up.
 */
export class OpsHttp {
  private metrics: DaemonMetrics | undefined;
  private hub: SseHub | undefined;
  private feed: PreviewFeed | undefined;
  private listener: HttpListener | undefined;
  private gate: AccessGate | undefined;
  private readonly snapshots = new SnapshotCache();
  private startedAt = 0;

  constructor(private readonly deps: OpsHttpDeps) {}

  /** http://host:port/ once listening. */
  get url(): string | undefined {
    return this.listener?.url;
  }

  async start(): Promise<void> {
    const { clock, config, view, logger } = this.deps;
    this.startedAt = clock.monotonic();
    // First: a missing or bad auth file is a configuration error, before anything is served.
    const creds = await loadCredentials(config.auth);
    const auth = creds ? new HttpAuth(creds, () => clock.monotonic()) : undefined;
    this.gate = new AccessGate({ logger, clock, config, auth, port: () => this.listener?.port });
    if (this.gate.exposed && !auth) {
      logger.warn(
        { host: config.host, port: config.port },
        `http.host ${config.host} is reachable from the network and http.auth is not set: anyone who can reach it sees metrics${config.preview ? ' and camera images' : ''}; set http.auth (docs/operations.md) or http.host: 127.0.0.1`,
      );
    }
    this.metrics = createDaemonMetrics({ view, version: this.deps.version, processMetrics: true });
    if (config.preview) {
      this.hub = new SseHub({ maxClients: config.max_event_clients, heartbeatMs: HEARTBEAT_MS, retryMs: RETRY_MS });
      this.hub.start();
      this.feed = new PreviewFeed({
        clock,
        view,
        hub: this.hub,
        device: this.deps.device,
        version: this.deps.version,
        frameIntervalMs: FRAME_EVENT_INTERVAL_MS,
        statusIntervalMs: STATUS_INTERVAL_MS,
        topN: PREVIEW_TOP,
      });
      this.feed.start();
    }
    this.listener = new HttpListener({ logger, clock, config, handle: (req, res) => this.handle(req, res) });
    await this.listener.start();
  }

  /** A classified frame (called by the pipeline's publish, whatever MQTT filters do with it). */
  observe(r: ClassifiedFrame): void {
    this.metrics?.observe({ camera: r.frame.camera, latency: r.latency });
    this.feed?.publish(r);
  }

  async stop(): Promise<void> {
    this.feed?.stop();
    // Ending the streams first lets pages see a clean end (and show "retrying") before the socket goes.
    this.hub?.stop();
    await this.listener?.stop();
    this.snapshots.clear();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const match = matchRoute(req.method, req.url, { preview: this.deps.config.preview });
    // Before anything else, 404s included: a refused request learns nothing about the paths.
    const refusal = await this.gate!.check(req, 'route' in match && match.route.name === 'healthz');
    if (refusal) {
      res.writeHead(refusal.status, { ...refusal.headers, 'content-length': Buffer.byteLength(refusal.body) });
      res.end(refusal.body);
      return;
    }
    if ('status' in match) {
      json(res, match.status, { error: match.error }, 'allow' in match ? { allow: match.allow } : {});
      return;
    }
    await this.serve(match.route, req, res);
  }

  private async serve(route: Route, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { view } = this.deps;
    switch (route.name) {
      case 'healthz': {
        // A blocked event loop answers nothing; a wedged inference worker answers 503, with the
        // same verdict that withholds systemd's WATCHDOG=1, so any liveness probe restarts it.
        const stalled = view.stalled?.();
        const uptime_s = Math.round((this.deps.clock.monotonic() - this.startedAt) / 1000);
        if (stalled !== undefined) return json(res, 503, { status: 'stalled', why: stalled, version: this.deps.version, uptime_s });
        // Not stuck, but nothing good comes out: every recent inference failed (NaN/Infinity outputs, say).
        const failing = view.failing?.();
        if (failing !== undefined) return json(res, 503, { status: 'failing', why: failing, version: this.deps.version, uptime_s });
        return json(res, 200, { status: 'ok', version: this.deps.version, uptime_s });
      }
      case 'readyz': {
        const r = readiness(view);
        return json(res, r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not ready', ...r });
      }
      case 'metrics': {
        const body = await this.metrics!.render();
        res.writeHead(200, { ...COMMON_HEADERS, 'content-type': this.metrics!.registry.contentType });
        res.end(body);
        return;
      }
      case 'preview':
        res.writeHead(200, {
          ...COMMON_HEADERS,
          'content-type': 'text/html; charset=utf-8',
          'content-security-policy': PREVIEW_CSP,
          'referrer-policy': 'no-referrer',
        });
        res.end(PREVIEW_HTML);
        return;
      case 'events':
        if (req.method === 'HEAD') {
          res.writeHead(200, { ...COMMON_HEADERS, 'content-type': 'text/event-stream; charset=utf-8' });
          res.end();
          return;
        }
        this.feed?.refresh();
        if (!this.hub?.add(req, res)) {
          json(res, 503, { error: `too many preview clients (http.max_event_clients: ${this.deps.config.max_event_clients})` }, { 'retry-after': '10' });
        }
        return;
      case 'snapshot':
        return this.snapshot(route.camera, res);
    }
  }

  private async snapshot(camera: string, res: ServerResponse): Promise<void> {
    const cameras = this.deps.view.cameras();
    const ids = cameras?.ids() ?? [];
    if (!cameras || !ids.includes(camera)) return json(res, 404, { error: `unknown camera "${camera}"; cameras: ${ids.join(', ')}` });
    const frame = cameras.latest(camera);
    if (!frame) return json(res, 503, { error: `camera ${camera} has no frame yet` }, { 'retry-after': '1' });
    let jpeg: Buffer;
    try {
      jpeg = await this.snapshots.jpeg(camera, frame);
    } catch (err) {
      return json(res, 503, { error: `the latest frame of ${camera} (${frame.source}, #${frame.seq}) cannot be encoded: ${(err as Error).message}` });
    }
    res.writeHead(200, {
      ...COMMON_HEADERS,
      'content-type': 'image/jpeg',
      'content-length': jpeg.length,
      'x-frame-seq': String(frame.seq),
      'x-frame-captured-at': new Date(frame.capturedAt).toISOString(),
    });
    res.end(jpeg);
  }
}
