import type { Scored } from '../vision/postprocess.js';

// Versioned payloads; their JSON Schemas are docs/schemas/*.json and tests validate real
// messages against them. Bump `v` on any incompatible change.

export interface ModelRef {
  name: string;
  version: string;
  sha256: string;
}

export interface PredictionPayload {
  v: 1;
  device: string;
  camera: string;
  seq: number;
  ts: string;
  frame: { source: string; width: number; height: number };
  model: ModelRef;
  top: Scored[];
  latency_ms: { preprocess: number; inference: number; total: number };
}

export type AvailabilityState = 'online' | 'offline' | 'stopped';

export interface StatusPayload {
  v: 1;
  state: AvailabilityState;
  device: string;
  version: string;
  ts?: string;
  model?: ModelRef | null;
  execution_provider?: string | null;
  cameras?: string[];
}

export function ms(x: number): number {
  return Math.round(x * 100) / 100;
}

export interface CameraStatusPayload {
  v: 1;
  device: string;
  camera: string;
  state: 'online' | 'offline' | 'disabled';
  /** Paused over MQTT (state "disabled" until resumed). */
  paused: boolean;
  since: string;
  last_error: string | null;
  /** A replay source (directory without loop) that has finished. */
  ended: boolean;
  fps: number;
  reconnects_last_hour: number;
  stalls_last_hour: number;
  /** skipped_files: files a directory source refused (not regular, too large, too slow to read). */
  frames: { captured: number; classified: number; dropped: number; decode_errors: number; capture_errors: number; skipped_files: number };
}

/** Retained B/D/config: the outcome of the last configuration reload (SIGHUP). */
export interface ConfigReportPayload {
  v: 1;
  device: string;
  ts: string;
  /** The file that was read. */
  file: string;
  /** applied: valid, runtime changes applied (see needs_restart); unchanged: nothing differs; invalid: rejected, nothing changed; failed: applying part of it failed (errors). */
  result: 'applied' | 'unchanged' | 'invalid' | 'failed';
  applied: string[];
  needs_restart: string[];
  /** publish keys changed in the file but still overridden by the `set` command (runtime.json). */
  overridden: string[];
  cameras: { added: string[]; removed: string[]; restarted: string[] };
  errors: string[];
}

export type UpdateState = 'idle' | 'checking' | 'downloading' | 'validating' | 'activating' | 'probation' | 'rolled-back' | 'failed';

/** Retained B/D/model: what is installed and what the updater is doing. */
export interface ModelUpdatePayload {
  v: 1;
  device: string;
  installed: { version: string; sha256: string; since?: string } | null;
  state: UpdateState;
  target?: string | null;
  progress: { bytes: number; total: number } | null;
  last_error: string | null;
  last_check: string | null;
  next_check: string | null;
  refused?: { version: string; reason: string }[];
  /** Present once an update state write failed for lack of space (it is retried until it goes through). */
  storage?: { pending: boolean; failed_writes: number; error: string | null };
}
