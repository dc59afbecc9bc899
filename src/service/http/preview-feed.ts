import type { Clock } from '../../core/clock.js';
import type { ClassifiedFrame } from '../../daemon/pipeline.js';
import { readiness, type DaemonView } from './daemon-view.js';
import type { SseHub } from './sse.js';
import { LatestThrottle } from './throttle.js';

/** The `frame` event: one classified frame of one camera. */
export interface PreviewFrame {
  camera: string;
  seq: number;
  ts: string;
  source: string;
  width: number;
  height: number;
  top: { label: string; score: number }[];
  latency_ms: { preprocess: number; inference: number; total: number };
  fps: number;
}

/** The `status` event: the daemon as a whole, sent when it changes. */
export interface PreviewStatus {
  device: string;
  version: string;
  ready: boolean;
  model: { name: string; version: string; sha256: string; provider: string } | null;
  mqtt: { connected: boolean; queued: number; dropped: number } | null;
  update: string;
  cameras: { id: string; state: string; fps: number; last_error: string | null }[];
}

export interface PreviewFeedDeps {
  clock: Pick<Clock, 'monotonic'>;
  view: DaemonView;
  hub: Pick<SseHub, 'broadcast'>;
  device: string;
  version: string;
  /** Per camera: at most one frame event per interval (the latest wins). */
  frameIntervalMs: number;
  /** How often the status is looked at (and sent if it changed). */
  statusIntervalMs: number;
  /** Labels per frame event (the page shows them as bars). */
  topN: number;
}

const round = (x: number, digits: number): number => Math.round(x * 10 ** digits) / 10 ** digits;

export function previewFrame(r: ClassifiedFrame, fps: number, topN: number): PreviewFrame {
  return {
    camera: r.frame.camera,
    seq: r.frame.seq,
    ts: new Date(r.frame.capturedAt).toISOString(),
    source: r.frame.source,
    width: r.width,
    height: r.height,
    top: r.top.slice(0, topN).map((t) => ({ label: t.label, score: round(t.score, 4) })),
    latency_ms: { preprocess: round(r.latency.preprocess, 2), inference: round(r.latency.inference, 2), total: round(r.latency.total, 2) },
    fps,
  };
}

export function previewStatus(view: DaemonView, device: string, version: string): PreviewStatus {
  const model = view.model();
  const mqtt = view.mqtt();
  const health = view.cameras()?.health() ?? {};
  return {
    device,
    version,
    ready: readiness(view).ready,
    model: model ? { name: model.name, version: model.version, sha256: model.sha256, provider: model.provider } : null,
    mqtt: mqtt ? { connected: mqtt.connected, queued: mqtt.queued, dropped: mqtt.droppedOffline } : null,
    update: view.updates()?.state ?? 'disabled',
    cameras: Object.entries(health).map(([id, h]) => ({ id, state: h.state, fps: h.fps, last_error: h.lastError })),
  };
}

/** Classified frames and daemon status -> preview events (throttled per camera). */
export class PreviewFeed {
  private throttle: LatestThrottle<ClassifiedFrame> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastStatus = '';

  constructor(private readonly deps: PreviewFeedDeps) {}

  start(): void {
    const { clock, hub, view, frameIntervalMs, topN } = this.deps;
    this.throttle = new LatestThrottle<ClassifiedFrame>({
      clock,
      intervalMs: frameIntervalMs,
      emit: (camera, r) => {
        const fps = view.cameras()?.health()[camera]?.fps ?? 0;
        hub.broadcast('frame', previewFrame(r, fps, topN), `frame:${camera}`);
      },
    });
    this.refresh();
    this.timer = setInterval(() => this.refresh(), this.deps.statusIntervalMs);
    this.timer.unref();
  }

  publish(r: ClassifiedFrame): void {
    this.throttle?.offer(r.frame.camera, r);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.throttle?.stop();
    this.throttle = undefined;
  }

  /** Sends the status if it changed; also before a client connects, so it never starts with a stale one. */
  refresh(): void {
    const status = previewStatus(this.deps.view, this.deps.device, this.deps.version);
    const json = JSON.stringify(status);
    if (json === this.lastStatus) return;
    this.lastStatus = json;
    this.deps.hub.broadcast('status', status, 'status');
  }
}
