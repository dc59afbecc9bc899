import { memoryUsage, cpuUsage } from 'node:process';
import type { CameraHealthSnapshot } from '../camera/camera-health.js';
import type { CameraCounters } from './frame-slots.js';
import type { ModelRef } from '../mqtt/payloads.js';
import type { StatsPayload } from './stats-schema.js';

export type { StatsPayload } from './stats-schema.js';

export interface StatsSources {
  deviceId: string;
  now: number;
  startedAt: number;
  health: Record<string, CameraHealthSnapshot>;
  counters: Record<string, CameraCounters>;
  inference: { p50: number; p95: number; samples: number };
  mqtt: StatsPayload['mqtt'];
  model: ModelRef | null;
}

const mb = (bytes: number): number => Math.round((bytes / 1_048_576) * 10) / 10;

/** CPU percent of one core since the previous call (the first call: since process start). */
export function createCpuMeter(): (now: number) => number {
  let last = { usage: cpuUsage(), at: 0 };
  return (now) => {
    const usage = cpuUsage(last.usage);
    const elapsed = last.at ? now - last.at : process.uptime() * 1000;
    last = { usage: cpuUsage(), at: now };
    return elapsed > 0 ? Math.round(((usage.user + usage.system) / 1000 / elapsed) * 1000) / 10 : 0;
  };
}

/** The B/D/stats payload. */
export function buildStats(s: StatsSources, cpuPercent: number): StatsPayload {
  const mem = memoryUsage();
  const cameras: StatsPayload['cameras'] = {};
  for (const [id, h] of Object.entries(s.health)) {
    const c = s.counters[id];
    cameras[id] = {
      state: h.state,
      fps: h.fps,
      captured: c?.captured ?? 0,
      classified: c?.classified ?? 0,
      dropped: c?.dropped ?? 0,
      decode_errors: c?.decodeErrors ?? 0,
      skipped_files: c?.skippedFiles ?? 0,
      inference_errors: c?.inferenceErrors ?? 0,
      reconnects_last_hour: h.reconnectsLastHour,
      stalls_last_hour: h.stallsLastHour,
    };
  }
  return {
    v: 1,
    device: s.deviceId,
    ts: new Date(s.now).toISOString(),
    uptime_s: Math.round((s.now - s.startedAt) / 1000),
    cpu_percent: cpuPercent,
    memory: { rss_mb: mb(mem.rss), heap_used_mb: mb(mem.heapUsed) },
    cameras,
    inference_ms: s.inference,
    mqtt: s.mqtt,
    model: s.model,
  };
}
