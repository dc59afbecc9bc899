import type { CameraHealthSnapshot } from '../../camera/camera-health.js';
import type { Frame } from '../../camera/frame.js';
import type { CameraCounters } from '../../daemon/frame-slots.js';
import type { ActiveModel } from '../../inference/classifier.js';
import type { ModelUpdatePayload } from '../../mqtt/payloads.js';

/**
 * What the HTTP server reads from the running daemon, on demand (scrape, request, status tick).
 * Getters rather than values: parts start one after another and the model can be swapped, so
 * each read sees the current state; undefined while a part is not up (yet).
 */
export interface DaemonView {
  model(): Pick<ActiveModel, 'name' | 'version' | 'sha256' | 'provider'> | undefined;
  cameras():
    | {
        ids(): string[];
        health(): Record<string, CameraHealthSnapshot>;
        latest(camera: string): Frame | undefined;
      }
    | undefined;
  /** The pipeline's per-camera frame counters. */
  counters(): Record<string, CameraCounters>;
  mqtt(): { connected: boolean; queued: number; sent: number; droppedOffline: number } | undefined;
  /** The over-the-air updater's report; undefined when updates are not configured. */
  updates(): Pick<ModelUpdatePayload, 'state'> | undefined;
  /** Why the pipeline is stuck (the watchdog's verdict); undefined while it progresses. */
  stalled?(): string | undefined;
  /** Why inference is failing (every recent inference failed; the watchdog's verdict); undefined while it works. */
  failing?(): string | undefined;
}

export interface Readiness {
  ready: boolean;
  model: { loaded: boolean; name?: string; version?: string };
  cameras: { online: string[]; total: number };
  /** Why not ready, one line per failing condition. */
  failing: string[];
}

/** /readyz: a model is loaded and at least one camera delivers frames. */
export function readiness(view: DaemonView): Readiness {
  const model = view.model();
  const health = view.cameras()?.health() ?? {};
  const online = Object.entries(health)
    .filter(([, h]) => h.state === 'online')
    .map(([id]) => id);
  const failing: string[] = [];
  if (!model) failing.push('no model loaded');
  if (online.length === 0) {
    const states = Object.entries(health).map(([id, h]) => `${id} ${h.state}${h.lastError ? ` (${h.lastError})` : ''}`);
    failing.push(`no camera online${states.length > 0 ? `: ${states.join(', ')}` : ''}`);
  }
  return {
    ready: failing.length === 0,
    model: model ? { loaded: true, name: model.name, version: model.version } : { loaded: false },
    cameras: { online, total: Object.keys(health).length },
    failing,
  };
}
