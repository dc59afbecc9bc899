import { cpus } from 'node:os';
import type { TensorMeta } from '../inference/protocol.js';
import type { LimitResult } from './limit.js';
import type { PipelineResult } from './pipeline-run.js';
import type { NaiveResult } from './naive.js';
import type { BenchSource } from './settings.js';
import { round, type P50P99 } from './stats.js';

/** The `bench --json` document. Keys are stable: scripts and docs/performance.md rely on them. */
export interface BenchReport {
  machine: { cpus: number; model: string; node: string; ort: string };
  model: { path: string; sha256: string; size_bytes: number; input: TensorMeta; provider: string };
  settings: { frames: number; source: BenchSource; threads: number };
  limit: { fps: number; p50_ms: number; p99_ms: number };
  pipeline: {
    fps: number;
    ratio: number;
    latency_ms: { preprocess: P50P99; inference: P50P99; total: P50P99 };
    event_loop_delay_p99_ms: number;
    rss_mb: { peak: number; steady: number };
  };
  naive: { fps: number; ratio: number; event_loop_delay_p99_ms: number };
  startup_ms: number;
  /** process.uptime() at the first published prediction (includes the phases before it). */
  startup_uptime_ms: number;
}

export interface ReportInput {
  model: { path: string; sha256: string; size_bytes: number };
  settings: BenchReport['settings'];
  limit: LimitResult;
  pipeline: PipelineResult;
  naive: NaiveResult;
}

const pair = (x: P50P99): P50P99 => ({ p50: round(x.p50), p99: round(x.p99) });

export function buildReport(r: ReportInput): BenchReport {
  const cpu = cpus();
  const { limit, pipeline, naive } = r;
  return {
    machine: { cpus: cpu.length, model: cpu[0]?.model ?? 'unknown', node: process.version, ort: naive.ortVersion },
    model: { ...r.model, input: limit.input, provider: limit.provider },
    settings: r.settings,
    limit: { fps: round(limit.fps), p50_ms: round(limit.p50_ms), p99_ms: round(limit.p99_ms) },
    pipeline: {
      fps: round(pipeline.fps),
      ratio: round(pipeline.fps / limit.fps, 3),
      latency_ms: {
        preprocess: pair(pipeline.latency_ms.preprocess),
        inference: pair(pipeline.latency_ms.inference),
        total: pair(pipeline.latency_ms.total),
      },
      event_loop_delay_p99_ms: round(pipeline.event_loop_delay_p99_ms),
      rss_mb: { peak: round(pipeline.rss_mb.peak, 1), steady: round(pipeline.rss_mb.steady, 1) },
    },
    naive: { fps: round(naive.fps), ratio: round(naive.fps / limit.fps, 3), event_loop_delay_p99_ms: round(naive.event_loop_delay_p99_ms) },
    startup_ms: round(pipeline.startup_ms, 1),
    startup_uptime_ms: round(pipeline.startup_uptime_ms, 1),
  };
}

/** The human-readable form: a few aligned lines, one measurement each. */
export function formatReport(b: BenchReport): string {
  const { limit, pipeline: p, naive } = b;
  const lat = (x: P50P99): string => `p50 ${x.p50.toFixed(1)} ms, p99 ${x.p99.toFixed(1)} ms`;
  const rows: [string, string][] = [
    ['machine', `${b.machine.model}, ${b.machine.cpus} CPUs, node ${b.machine.node}, onnxruntime-node ${b.machine.ort}`],
    ['model', `${b.model.path} (${(b.model.size_bytes / 1e6).toFixed(1)} MB, ${b.model.input.type} [${b.model.input.shape.join(',')}], ${b.model.provider})`],
    ['settings', `${b.settings.frames} frames, source ${b.settings.source}, threads ${b.settings.threads}`],
    ['limit (worker, session.run)', `${limit.fps.toFixed(2)} fps; run p50 ${limit.p50_ms.toFixed(1)} ms, p99 ${limit.p99_ms.toFixed(1)} ms`],
    ['pipeline', `${p.fps.toFixed(2)} fps = ${(p.ratio * 100).toFixed(1)}% of the limit`],
    ['  preprocess', lat(p.latency_ms.preprocess)],
    ['  inference', lat(p.latency_ms.inference)],
    ['  capture -> publish', lat(p.latency_ms.total)],
    ['  event-loop delay p99', `${p.event_loop_delay_p99_ms.toFixed(1)} ms`],
    ['  RSS', `peak ${p.rss_mb.peak.toFixed(0)} MB, steady ${p.rss_mb.steady.toFixed(0)} MB`],
    ['naive (main thread)', `${naive.fps.toFixed(2)} fps = ${(naive.ratio * 100).toFixed(1)}% of the limit; event-loop delay p99 ${naive.event_loop_delay_p99_ms.toFixed(1)} ms`],
    ['start-up', `${b.startup_ms.toFixed(0)} ms to the first published prediction (process uptime then: ${b.startup_uptime_ms.toFixed(0)} ms)`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}
