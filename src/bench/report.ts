import { cpus } from 'node:os';
import type { TensorMeta } from '../inference/protocol.js';
import type { LimitResult } from './limit.js';
import type { PipelineResult } from './pipeline-run.js';
import type { NaiveResult } from './naive.js';
import type { BenchSource } from './settings.js';
import { round, type P50P99 } from './stats.js';
import type { ChartInput } from './chart.js';
import type { ColdStartResult } from './cold-start.js';

/** The `bench --json` document. Keys are stable: scripts and docs/performance.md rely on them. */
export interface BenchReport {
  machine: { cpus: number; model: string; node: string; ort: string };
  model: { path: string; sha256: string; size_bytes: number; input: TensorMeta; provider: string };
  /** threads: as given (0: auto); threads_used: what onnxruntime got (intraOpThreadsFor). */
  settings: { frames: number; source: BenchSource; threads: number; threads_used: number; spinning: boolean; rate: number };
  limit: { fps: number; p50_ms: number; p99_ms: number; cpu_ms_per_frame: number };
  pipeline: {
    fps: number;
    ratio: number;
    latency_ms: { preprocess: P50P99; inference: P50P99; total: P50P99 };
    event_loop_delay_p99_ms: number;
    rss_mb: { peak: number; steady: number; growth: number };
    cpu_ms_per_frame: number;
  };
  naive: { fps: number; ratio: number; event_loop_delay_p99_ms: number; cpu_ms_per_frame: number };
  /** In this process, warm: Classifier created -> first prediction handed to MQTT. */
  startup_ms: number;
  /** A fresh `edge-classifier run` process, one synthetic 640x480 camera at 30 fps (cold-start.ts). */
  daemon: { startup_ms: number; rss_mb: { peak: number; steady: number } | null };
}

export interface ReportInput {
  model: { path: string; sha256: string; size_bytes: number };
  settings: BenchReport['settings'];
  limit: LimitResult;
  pipeline: PipelineResult;
  naive: NaiveResult;
  daemon: ColdStartResult;
}

const pair = (x: P50P99): P50P99 => ({ p50: round(x.p50), p99: round(x.p99) });

export function buildReport(r: ReportInput): BenchReport {
  const cpu = cpus();
  const { limit, pipeline, naive } = r;
  return {
    machine: { cpus: cpu.length, model: cpu[0]?.model ?? 'unknown', node: process.version, ort: naive.ortVersion },
    model: { ...r.model, input: limit.input, provider: limit.provider },
    settings: r.settings,
    limit: { fps: round(limit.fps), p50_ms: round(limit.p50_ms), p99_ms: round(limit.p99_ms), cpu_ms_per_frame: round(limit.cpu_ms_per_frame, 1) },
    pipeline: {
      fps: round(pipeline.fps),
      ratio: round(pipeline.fps / limit.fps, 3),
      latency_ms: {
        preprocess: pair(pipeline.latency_ms.preprocess),
        inference: pair(pipeline.latency_ms.inference),
        total: pair(pipeline.latency_ms.total),
      },
      event_loop_delay_p99_ms: round(pipeline.event_loop_delay_p99_ms),
      rss_mb: { peak: round(pipeline.rss_mb.peak, 1), steady: round(pipeline.rss_mb.steady, 1), growth: round(pipeline.rss_mb.growth, 1) },
      cpu_ms_per_frame: round(pipeline.cpu_ms_per_frame, 1),
    },
    naive: {
      fps: round(naive.fps),
      ratio: round(naive.fps / limit.fps, 3),
      event_loop_delay_p99_ms: round(naive.event_loop_delay_p99_ms),
      cpu_ms_per_frame: round(naive.cpu_ms_per_frame, 1),
    },
    startup_ms: round(pipeline.startup_ms, 1),
    daemon: {
      startup_ms: round(r.daemon.startup_ms, 1),
      rss_mb: r.daemon.rss_mb && { peak: round(r.daemon.rss_mb.peak, 1), steady: round(r.daemon.rss_mb.steady, 1) },
    },
  };
}

const rateText = (b: BenchReport): string => (b.settings.rate > 0 ? `pipeline source at ${b.settings.rate} fps` : 'full rate');
const threadsText = (b: BenchReport): string =>
  b.settings.threads === 0 ? `threads auto (${b.settings.threads_used})` : `threads ${b.settings.threads_used}`;

/** The human-readable form: a few aligned lines, one measurement each. */
export function formatReport(b: BenchReport): string {
  const { limit, pipeline: p, naive } = b;
  const lat = (x: P50P99): string => `p50 ${x.p50.toFixed(1)} ms, p99 ${x.p99.toFixed(1)} ms`;
  const rows: [string, string][] = [
    ['machine', `${b.machine.model}, ${b.machine.cpus} CPUs, node ${b.machine.node}, onnxruntime-node ${b.machine.ort}`],
    ['model', `${b.model.path} (${(b.model.size_bytes / 1e6).toFixed(1)} MB, ${b.model.input.type} [${b.model.input.shape.join(',')}], ${b.model.provider})`],
    ['settings', `${b.settings.frames} frames, source ${b.settings.source}, ${threadsText(b)}, spinning ${b.settings.spinning ? 'on' : 'off'}, ${rateText(b)}`],
    ['limit (worker, session.run)', `${limit.fps.toFixed(2)} fps; run p50 ${limit.p50_ms.toFixed(1)} ms, p99 ${limit.p99_ms.toFixed(1)} ms; CPU ${limit.cpu_ms_per_frame.toFixed(1)} ms/frame`],
    ['pipeline', `${p.fps.toFixed(2)} fps = ${(p.ratio * 100).toFixed(1)}% of the limit${b.settings.rate > 0 ? ' (paced)' : ''}; CPU ${p.cpu_ms_per_frame.toFixed(1)} ms/frame`],
    ['  preprocess', lat(p.latency_ms.preprocess)],
    ['  inference', lat(p.latency_ms.inference)],
    ['  capture -> publish', lat(p.latency_ms.total)],
    ['  event-loop delay p99', `${p.event_loop_delay_p99_ms.toFixed(1)} ms`],
    ['  RSS', `peak ${p.rss_mb.peak.toFixed(0)} MB, steady ${p.rss_mb.steady.toFixed(0)} MB, growth ${p.rss_mb.growth.toFixed(1)} MB over the run`],
    ['naive (main thread)', `${naive.fps.toFixed(2)} fps = ${(naive.ratio * 100).toFixed(1)}% of the limit; event-loop delay p99 ${naive.event_loop_delay_p99_ms.toFixed(1)} ms; CPU ${naive.cpu_ms_per_frame.toFixed(1)} ms/frame`],
    ['start-up', `${b.daemon.startup_ms.toFixed(0)} ms from starting a daemon process to its first prediction over MQTT (warm, in this process: ${b.startup_ms.toFixed(0)} ms)`],
    ['daemon RSS (1 camera)', b.daemon.rss_mb ? `peak ${b.daemon.rss_mb.peak.toFixed(0)} MB, steady ${b.daemon.rss_mb.steady.toFixed(0)} MB` : 'not measured (no /proc)'],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}

/** The `--chart` figure: the pipeline's two latencies, the naive loop and the limit's runs. */
export function chartInput(b: BenchReport, r: ReportInput): ChartInput {
  const name = b.model.path.split('/').pop() ?? b.model.path;
  return {
    title: `edge-classifier bench: latency per frame (${name})`,
    subtitle:
      `${b.settings.frames} frames, source ${b.settings.source}, ${threadsText(b)}, spinning ${b.settings.spinning ? 'on' : 'off'}, ${rateText(b)}; limit ${b.limit.fps.toFixed(1)} fps, ` +
      `pipeline ${b.pipeline.fps.toFixed(1)} fps (ratio ${b.pipeline.ratio.toFixed(2)}), naive ${b.naive.fps.toFixed(1)} fps; ` +
      `${b.machine.model}, ${b.machine.cpus} CPUs`,
    series: [
      { label: 'pipeline: capture -> publish', colour: '#1f5fbf', samples: r.pipeline.samples.total },
      { label: 'pipeline: inference (worker)', colour: '#e07b00', samples: r.pipeline.samples.inference },
      { label: 'naive loop: decode + run (main thread)', colour: '#c0262d', samples: r.naive.samples },
      { label: 'limit: bare session.run', colour: '#2a9d3a', samples: r.limit.samples, dashed: true },
    ],
  };
}
