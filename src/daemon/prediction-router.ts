import type { Clock } from '../core/clock.js';
import type { PublishConfig } from '../config/schema.js';
import { ChangeFilter } from '../rules/change-filter.js';
import type { LabelEvent, LabelWatcher } from '../rules/label-watch.js';
import { ms, type ModelRef, type PredictionPayload } from '../mqtt/payloads.js';
import type { ClassifiedFrame } from './pipeline.js';

export interface PredictionRouterDeps {
  clock: Clock;
  deviceId: string;
  settings: () => PublishConfig;
  watcher: LabelWatcher;
  model: () => ModelRef | undefined;
  publishPrediction: (payload: PredictionPayload) => void;
  publishLabel: (event: LabelEvent) => void;
}

type Waiter = (payload: PredictionPayload) => void;

/**
 * From classified frames to messages: min_score, only_on_change (per camera), and the
 * debounced label events of the watch rules. Label events are computed on every frame, so
 * change-only publishing never delays an automation.
 */
export class PredictionRouter {
  private readonly filters = new Map<string, ChangeFilter>();
  private readonly waiters = new Map<string, Waiter[]>();

  constructor(private readonly deps: PredictionRouterDeps) {}

  /** Resolves with the next classified frame of `camera`, which is published whatever the filters say. */
  nextPrediction(camera: string): Promise<PredictionPayload> {
    return new Promise((resolve) => {
      const list = this.waiters.get(camera) ?? [];
      list.push(resolve);
      this.waiters.set(camera, list);
    });
  }

  /** Frees waiters (shutdown, camera removed). */
  cancelWaiters(camera?: string): number {
    const keys = camera ? [camera] : [...this.waiters.keys()];
    let n = 0;
    for (const k of keys) {
      n += this.waiters.get(k)?.length ?? 0;
      this.waiters.delete(k);
    }
    return n;
  }

  /** Drops a removed camera's change filter and waiters. */
  forget(camera: string): void {
    this.filters.delete(camera);
    this.cancelWaiters(camera);
  }

  handle(r: ClassifiedFrame): PredictionPayload | undefined {
    const model = this.deps.model();
    if (!model) return undefined;
    const { top_k, min_score, only_on_change } = this.deps.settings();
    const camera = r.frame.camera;
    // The pipeline may rank more labels than top_k (the HTTP preview shows five).
    const top = r.top.slice(0, top_k).filter((t) => t.score >= min_score);
    const payload: PredictionPayload = {
      v: 1,
      device: this.deps.deviceId,
      camera,
      seq: r.frame.seq,
      ts: new Date(r.frame.capturedAt).toISOString(),
      frame: { source: r.frame.source, width: r.width, height: r.height },
      model,
      top,
      latency_ms: { preprocess: ms(r.latency.preprocess), inference: ms(r.latency.inference), total: ms(r.latency.total) },
    };
    // The indices the frame was classified with: a reload may have changed the rules since.
    const indices = r.watched ?? this.deps.watcher.indices;
    const scoreOf = (i: number): number | undefined => {
      const at = indices.indexOf(i);
      return at < 0 ? undefined : (r.scores[at] ?? 0);
    };
    for (const event of this.deps.watcher.update(camera, scoreOf)) {
      this.deps.publishLabel(event);
    }
    const waiting = this.waiters.get(camera);
    this.waiters.delete(camera);
    const changed = only_on_change === false || this.filter(camera).shouldPublish(top[0]);
    if (changed || waiting) this.deps.publishPrediction(payload);
    for (const w of waiting ?? []) w(payload);
    return changed ? payload : undefined;
  }

  private filter(camera: string): ChangeFilter {
    let f = this.filters.get(camera);
    if (!f) {
      f = new ChangeFilter({
        clock: this.deps.clock,
        config: () => {
          const o = this.deps.settings().only_on_change;
          return o === false ? { hysteresis: 0, heartbeat: 0 } : o;
        },
      });
      this.filters.set(camera, f);
    }
    return f;
  }
}
