import { beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/fixtures.js';
import { buildDemoModel } from '../../src/modelgen/demo-model.js';
import { DEMO_PALETTE } from '../../src/modelgen/palette.js';

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

function checkReport(r: Json, source: 'jpeg' | 'raw', model: string): void {
  expect(Object.keys(r).sort()).toEqual(
    ['limit', 'machine', 'model', 'naive', 'pipeline', 'settings', 'startup_ms', 'startup_uptime_ms'].sort(),
  );
  const machine = obj(r.machine);
  positive(machine.cpus);
  for (const k of ['model', 'node', 'ort']) expect(machine[k]).toEqual(expect.any(String));

  const m = obj(r.model);
  expect(m.path).toBe(model);
  expect(m.sha256).toMatch(/^[0-9a-f]{64}$/);
  positive(m.size_bytes);
  expect(obj(m.input).shape).toEqual([1, 3, 224, 224]);

  expect(r.settings).toEqual({ frames: 20, source, threads: 0 });

  const limit = obj(r.limit);
  for (const k of ['fps', 'p50_ms', 'p99_ms']) positive(limit[k]);

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

  const naive = obj(r.naive);
  positive(naive.fps);
  positive(naive.ratio);
  expect(num(naive.event_loop_delay_p99_ms)).toBeGreaterThanOrEqual(0);

  positive(r.startup_ms);
  expect(num(r.startup_uptime_ms)).toBeGreaterThan(num(r.startup_ms));
}

describe('bench command', () => {
  let model: string;

  beforeAll(() => {
    model = join(tempDir(), 'demo.onnx');
    writeFileSync(model, buildDemoModel());
  });

  for (const source of ['jpeg', 'raw'] as const) {
    it(`reports every figure as JSON (${source} frames)`, async () => {
      const args = ['bench', '--model', model, '--frames', '20', '--json', ...(source === 'raw' ? ['--source', 'raw'] : [])];
      const r = await runCli(args);
      expect(r.code, r.stderr).toBe(0);
      checkReport(JSON.parse(r.stdout) as Json, source, model);
    });
  }

  it('prints a table by default, and accepts a labels file', async () => {
    const labels = join(tempDir(), 'labels.txt');
    writeFileSync(labels, DEMO_PALETTE.map((c) => c.name).join('\n') + '\n');
    const r = await runCli(['bench', '--model', model, '--labels', labels, '--frames', '5', '--providers', 'cpu']);
    expect(r.code, r.stderr).toBe(0);
    for (const row of ['limit', 'pipeline', 'preprocess', 'event-loop delay p99', 'RSS', 'naive', 'start-up']) {
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
  });
});
