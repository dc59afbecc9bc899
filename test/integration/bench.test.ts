import { beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/fixtures.js';
import { buildDemoModel } from '../../src/modelgen/demo-model.js';
import { DEMO_PALETTE } from '../../src/camera/palette.js';
import { ModelSchema } from '../../src/config/schema.js';
import { parseSvg, polylinePoints, xmlText } from '../helpers/svg.js';

// Times depend on the machine and its load: only the shape of the report is checked, and that
// every figure that must be positive is.

type Json = Record<string, unknown>;

const num = (v: unknown): number => {
  expect(typeof v).toBe('number');
  expect(Number.isFinite(v)).toBe(true);
  return v as number;
};
const positive = (v: unknown): void => expect(num(v)).toBeGreaterThan(0);
const obj = (v: unknown): Json => {
  expect(v).toBeTypeOf('object');
  return v as Json;
};

function checkReport(r: Json, source: 'jpeg' | 'raw', model: string, settings: { threads: number; spinning: boolean }): void {
  expect(Object.keys(r).sort()).toEqual(
    ['daemon', 'limit', 'machine', 'model', 'naive', 'pipeline', 'settings', 'startup_ms'].sort(),
  );
  const machine = obj(r.machine);
  positive(machine.cpus);
  for (const k of ['model', 'node', 'ort']) expect(machine[k]).toEqual(expect.any(String));

  const m = obj(r.model);
  expect(m.path).toBe(model);
  expect(m.sha256).toMatch(/^[0-9a-f]{64}$/);
  positive(m.size_bytes);
  expect(obj(m.input).shape).toEqual([1, 3, 224, 224]);

  const threadsUsed = settings.threads || Math.max(1, availableParallelism() - 1);
  expect(r.settings).toEqual({ frames: 20, source, rate: 0, ...settings, threads_used: threadsUsed });

  const limit = obj(r.limit);
  for (const k of ['fps', 'p50_ms', 'p99_ms', 'cpu_ms_per_frame']) positive(limit[k]);

  const p = obj(r.pipeline);
  positive(p.fps);
  positive(p.ratio);
  const lat = obj(p.latency_ms);
  expect(Object.keys(lat).sort()).toEqual(['inference', 'preprocess', 'total']);
  for (const stage of Object.values(lat)) {
    const s = obj(stage);
    // A raw frame at the model size skips sharp entirely: its preprocessing may round to 0.
    expect(num(s.p50)).toBeGreaterThanOrEqual(0);
    expect(num(s.p99)).toBeGreaterThanOrEqual(num(s.p50));
  }
  positive(obj(lat.inference).p50);
  expect(num(p.event_loop_delay_p99_ms)).toBeGreaterThanOrEqual(0);
  const rss = obj(p.rss_mb);
  positive(rss.steady);
  expect(num(rss.peak)).toBeGreaterThanOrEqual(num(rss.steady));
  // Growth can be negative (memory handed back): only its presence is checked.
  num(rss.growth);
  positive(p.cpu_ms_per_frame);

  const naive = obj(r.naive);
  positive(naive.fps);
  positive(naive.ratio);
  expect(num(naive.event_loop_delay_p99_ms)).toBeGreaterThanOrEqual(0);
  positive(naive.cpu_ms_per_frame);

  positive(r.startup_ms);
  const daemon = obj(r.daemon);
  // A fresh process (node, modules, config, broker, model) cannot start faster than a warm classifier.
  expect(num(daemon.startup_ms)).toBeGreaterThan(num(r.startup_ms));
  const daemonRss = obj(daemon.rss_mb); // Linux: /proc is there
  positive(daemonRss.steady);
  expect(num(daemonRss.peak)).toBeGreaterThanOrEqual(num(daemonRss.steady));
}

describe('bench command', () => {
  let model: string;

  beforeAll(() => {
    model = join(tempDir(), 'demo.onnx');
    writeFileSync(model, buildDemoModel());
  });

  it('reports every figure as JSON (jpeg frames, the daemon\'s default session settings)', async () => {
    const r = await runCli(['bench', '--model', model, '--frames', '20', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const defaults = ModelSchema.parse({});
    checkReport(JSON.parse(r.stdout) as Json, 'jpeg', model, { threads: defaults.intra_op_threads, spinning: defaults.intra_op_spinning });
  });

  it('reports every figure as JSON (raw frames, --threads 2 --spinning on)', async () => {
    const r = await runCli(['bench', '--model', model, '--frames', '20', '--json', '--source', 'raw', '--threads', '2', '--spinning', 'on']);
    expect(r.code, r.stderr).toBe(0);
    checkReport(JSON.parse(r.stdout) as Json, 'raw', model, { threads: 2, spinning: true });
  });

  it('draws every frame of every phase in an SVG chart (--chart)', async () => {
    const chart = join(tempDir(), 'latency.svg');
    const r = await runCli(['bench', '--model', model, '--frames', '20', '--providers', 'cpu', '--chart', chart]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('pipeline');
    const svg = readFileSync(chart, 'utf8');
    const els = parseSvg(svg);
    // Self-contained: nothing fetched when it is opened.
    expect(svg).not.toMatch(/href=|<script|<style|@import|url\(/);
    const lines = els.filter((e) => e.name === 'polyline');
    expect(lines.map((l) => xmlText(l.attrs['data-label'] ?? ''))).toEqual([
      'pipeline: capture -> publish',
      'pipeline: inference (worker)',
      'naive loop: decode + run (main thread)',
      'limit: bare session.run',
    ]);
    for (const l of lines) {
      const pts = polylinePoints(l);
      expect(pts).toHaveLength(20);
      for (const [x, y] of pts) {
        expect(Number.isFinite(x) && Number.isFinite(y)).toBe(true);
      }
      // Time runs left to right.
      expect(pts.every((p, i) => i === 0 || p[0] >= pts[i - 1]![0])).toBe(true);
    }
    const texts = els.filter((e) => e.name === 'text').map((e) => xmlText(e.text));
    expect(texts.some((t) => t.includes('latency per frame (ms)'))).toBe(true);
    expect(texts.some((t) => t.startsWith('time since'))).toBe(true);
    // Axis ticks and one legend row per series.
    expect(texts.filter((t) => /^\d+(\.\d)?$/.test(t)).length).toBeGreaterThanOrEqual(6);
    expect(texts.filter((t) => /: p50 [\d.]+ ms, p99 [\d.]+ ms, 20 frames$/.test(t))).toHaveLength(4);
  });

  it('checks the chart folder before it runs', async () => {
    const chart = join(tempDir(), 'no-such-dir', 'latency.svg');
    const r = await runCli(['bench', '--model', model, '--frames', '20', '--chart', chart]);
    expect(r.code).toBe(64);
    expect(r.stderr).toContain('--chart: cannot write to');
    expect(r.stdout).toBe('');
  });

  it('prints a table by default, and accepts a labels file', async () => {
    const labels = join(tempDir(), 'labels.txt');
    writeFileSync(labels, DEMO_PALETTE.map((c) => c.name).join('\n') + '\n');
    const r = await runCli(['bench', '--model', model, '--labels', labels, '--frames', '5', '--providers', 'cpu']);
    expect(r.code, r.stderr).toBe(0);
    for (const row of ['limit', 'pipeline', 'preprocess', 'event-loop delay p99', 'RSS', 'naive', 'start-up', 'CPU']) {
      expect(r.stdout).toContain(row);
    }
  });

  it('says clearly when the model file does not exist', async () => {
    const missing = join(tempDir(), 'missing.onnx');
    const r = await runCli(['bench', '--model', missing, '--frames', '20', '--json']);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain(`model file not found: ${missing}`);
    expect(r.stdout).toBe('');
  });

  it('rejects bad options with a usage error', async () => {
    const r = await runCli(['bench', '--model', model, '--source', 'png']);
    expect(r.code).toBe(64);
    expect(r.stderr).toContain('--source must be jpeg or raw');
    const spin = await runCli(['bench', '--model', model, '--spinning', 'yes']);
    expect(spin.code).toBe(64);
    expect(spin.stderr).toContain('--spinning must be on or off');
  });
});
