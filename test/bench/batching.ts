/**
 * Benchmark: does batching frames from several cameras into one session.run (batch B = 2..4)
 * give more frames per second than B back-to-back batch-1 runs, on this CPU?
 *
 *   npx vite-node test/bench/batching.ts [--models demo-8px,demo,mobilenet,resnet50,resnet50-int8]
 *        [--threads 2,1] [--seconds 3] [--rounds 3] [--batches 1,2,3,4]
 *
 * Not a test (vitest never picks it up); it only reads models and prints a table.
 *
 * Models (all with a dynamic batch dimension, float32 input [B,3,224,224] unless noted):
 *   demo-8px       the demo graph on an 8x8 input: pure per-call overhead.
 *   demo           buildDemoModel({ batch: 'dynamic' }): ReduceMean + MatMul at 224x224: no
 *                  real compute, but each frame's 600 KB is copied and read once (memory-bound).
 *   mobilenet      ../shared/models/mobilenetv2-12-int8.onnx (or $MOBILENET_MODEL).
 *   resnet50       the synthetic ResNet50 v1.5 of `model synth` (src/modelgen/synth.ts), fp32.
 *   resnet50-int8  the same in QDQ int8, which ORT fuses into QLinearConv/QLinearAdd.
 * Weights are random (fixed seed): speed does not depend on the values, accuracy is not measured.
 *
 * For every (model, intraOpNumThreads) pair: one session (graphOptimizationLevel 'all',
 * executionProviders ['cpu']), warmed up at every batch size; then `rounds` rounds, each of which
 * visits every configuration (in a rotating order, so slow drift of the VM does not favour one
 * configuration) for seconds/rounds; so each configuration gets >= `seconds` of runs in total.
 * Configurations per batch size B:
 *   batch  one session.run on a [B,3,224,224] tensor (the B camera frames copied into one buffer)
 *   seq    B back-to-back session.run calls on [1,3,224,224] tensors (what the daemon does now)
 * Timed region = copying frames into a fresh input buffer + new ort.Tensor + await session.run,
 * i.e. everything the worker would do per run except preprocessing.
 *
 * Latency: with B cameras whose frames are ready at the same moment, under `batch` every frame
 * is finished when the batch run ends (so the first camera's frame waits for the whole batch);
 * under `seq` the k-th frame is finished after k batch-1 runs. Both are measured directly (the
 * `seq` rows record when the first frame's run ended). Unsynchronized cameras would add, on top,
 * the time the first frame waits for the other B-1 frames to arrive.
 */
import * as ort from 'onnxruntime-node';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { buildDemoModel } from '../../src/modelgen/demo-model.js';
import { synthesizeResnet50 } from '../../src/modelgen/synth.js';
import { seededRandom } from '../../src/core/seeded-random.js';
import { fileURLToPath } from 'node:url';

const SIZE = 224;

// ---------------------------------------------------------------------------------------------
// Quiet-machine guard. Other processes (builds, test runs) share the 2 cores; a block of runs
// during which they used CPU is thrown away and measured again. Linux /proc only; elsewhere the
// guard is off.

const FOREIGN_LIMIT = 0.1; // cores: allowed average CPU use by other processes during a block

/** [busy jiffies of the whole machine, jiffies of this process], or undefined without /proc. */
function cpuTicks(): [number, number] | undefined {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    const busy = cpu[0]! + cpu[1]! + cpu[2]! + cpu[5]! + cpu[6]! + cpu[7]!;
    // /proc/self/stat: fields after the ")" of the command name; utime, stime are 14th, 15th.
    const self = readFileSync('/proc/self/stat', 'utf8');
    const f = self.slice(self.lastIndexOf(')') + 2).split(' ');
    return [busy, Number(f[11]) + Number(f[12])];
  } catch {
    return undefined;
  }
}
const TICKS_PER_MS = 100 / 1000; // USER_HZ is 100 on Linux


// ---------------------------------------------------------------------------------------------

interface ModelSource {
  name: string;
  load: () => string | Uint8Array | Promise<Uint8Array>;
  /** Input height = width; default 224. */
  size?: number;
}

const MODELS: Record<string, ModelSource> = {
  demo: { name: 'demo (tiny)', load: () => buildDemoModel({ batch: 'dynamic' }) },
  // The demo graph on an 8x8 input: no compute and no memory traffic, so pure per-call overhead.
  'demo-8px': { name: 'demo 8x8 input', load: () => buildDemoModel({ batch: 'dynamic', size: 8 }), size: 8 },
  mobilenet: {
    name: 'MobileNetV2 int8',
    load: () => process.env.MOBILENET_MODEL ?? fileURLToPath(new URL('../../../shared/models/mobilenetv2-12-int8.onnx', import.meta.url)),
  },
  // The same generator as `edge-classifier model synth --arch resnet50` (ResNet50 v1.5, dynamic batch).
  resnet50: { name: 'ResNet50 fp32 (synthetic)', load: () => synthesizeResnet50({ precision: 'fp32', seed: 1 }) },
  'resnet50-int8': { name: 'ResNet50 int8 QDQ (synth.)', load: () => synthesizeResnet50({ precision: 'int8', seed: 1 }) },
};

/** A pool of distinct preprocessed-looking frames (ImageNet-normalized range, about [-2, 2.6]). */
function makeFrames(count: number, size: number): Float32Array[] {
  const rand = seededRandom(12345); // the same data on every run
  return Array.from({ length: count }, () => {
    const f = new Float32Array(3 * size * size);
    for (let i = 0; i < f.length; i++) f[i] = rand() * 4.6 - 2;
    return f;
  });
}

interface Sample {
  total: number; // ms, whole configuration (one batch run, or B sequential runs)
  first: number; // ms until the first camera's frame had its result
}

type Mode = 'batch' | 'seq';

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

class Bench {
  private next = 0;
  private sink = 0;

  constructor(
    private readonly session: ort.InferenceSession,
    private readonly frames: Float32Array[],
    private readonly size: number,
  ) {}

  /** Copy B frames into a fresh buffer, wrap it, run; returns ms. */
  private async runOnce(b: number): Promise<void> {
    const frame = 3 * this.size * this.size;
    const data = new Float32Array(b * frame);
    for (let i = 0; i < b; i++) data.set(this.frames[this.next++ % this.frames.length]!, i * frame);
    const input = new ort.Tensor('float32', data, [b, 3, this.size, this.size]);
    const out = await this.session.run({ [this.session.inputNames[0]!]: input });
    const res = out[this.session.outputNames[0]!]!;
    this.sink += (res.data as Float32Array)[0]!; // touch the result
    if (res.dims[0] !== b) throw new Error(`expected batch ${b} output, got [${res.dims.join(',')}]`);
  }

  async sample(mode: Mode, b: number): Promise<Sample> {
    const t0 = performance.now();
    if (mode === 'batch') {
      await this.runOnce(b);
      const t = performance.now() - t0;
      return { total: t, first: t };
    }
    await this.runOnce(1);
    const first = performance.now() - t0;
    for (let i = 1; i < b; i++) await this.runOnce(1);
    return { total: performance.now() - t0, first };
  }

  /** Blocks thrown away because other processes used the CPU meanwhile. */
  discarded = 0;

  /**
   * Runs for at least `ms` (and at least minRuns samples) and appends the samples to `into`,
   * unless other processes used more than FOREIGN_LIMIT cores meanwhile: then the block is
   * discarded and, after a pause, measured again (up to 20 times; then kept, and counted).
   */
  async measure(mode: Mode, b: number, ms: number, minRuns: number, into: Sample[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const block: Sample[] = [];
      const before = cpuTicks();
      const start = performance.now();
      while (performance.now() - start < ms || block.length < minRuns) block.push(await this.sample(mode, b));
      const after = cpuTicks();
      const wall = performance.now() - start;
      const foreign = before && after ? (after[0] - before[0] - (after[1] - before[1])) / (wall * TICKS_PER_MS) : 0;
      if (foreign <= FOREIGN_LIMIT || attempt >= 20) {
        if (foreign > FOREIGN_LIMIT) this.noisy++;
        into.push(...block);
        return;
      }
      this.discarded++;
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }

  /** Blocks kept although the machine never got quiet. */
  noisy = 0;

  get checksum(): number {
    return this.sink;
  }
}

interface Row {
  model: string;
  threads: number;
  b: number;
  mode: Mode;
  runs: number;
  seconds: number;
  median: number;
  p90: number;
  fps: number; // B / median
  fpsMean: number; // frames / total wall time of the samples
  firstMedian: number;
}

function summarize(model: string, threads: number, b: number, mode: Mode, samples: Sample[]): Row {
  const totals = samples.map((s) => s.total).sort((x, y) => x - y);
  const firsts = samples.map((s) => s.first).sort((x, y) => x - y);
  const sum = totals.reduce((a, v) => a + v, 0);
  const median = quantile(totals, 0.5);
  return {
    model,
    threads,
    b,
    mode,
    runs: samples.length,
    seconds: sum / 1000,
    median,
    p90: quantile(totals, 0.9),
    fps: (b * 1000) / median,
    fpsMean: (b * samples.length * 1000) / sum,
    firstMedian: quantile(firsts, 0.5),
  };
}

function list(v: string | undefined, dflt: string): string[] {
  return (v ?? dflt).split(',').map((s) => s.trim()).filter(Boolean);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      models: { type: 'string' },
      threads: { type: 'string' },
      seconds: { type: 'string' },
      rounds: { type: 'string' },
      batches: { type: 'string' },
    },
  });
  const modelKeys = list(values.models, 'demo-8px,demo,mobilenet,resnet50,resnet50-int8');
  const threadCounts = list(values.threads, '2,1').map(Number);
  const seconds = Number(values.seconds ?? 3);
  const rounds = Math.max(1, Number(values.rounds ?? 3));
  const batches = list(values.batches, '1,2,3,4').map(Number);

  console.log(`onnxruntime-node ${ort.env.versions.node ?? '?'}, node ${process.version}, loadavg ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`>= ${seconds} s per configuration in ${rounds} interleaved rounds\n`);

  const rows: Row[] = [];
  for (const key of modelKeys) {
    const src = MODELS[key];
    if (!src) throw new Error(`unknown model ${key}; known: ${Object.keys(MODELS).join(', ')}`);
    const model = await src.load();
    for (const threads of threadCounts) {
      const t0 = performance.now();
      const session =
        typeof model === 'string'
          ? await ort.InferenceSession.create(model, sessionOptions(threads))
          : await ort.InferenceSession.create(model, sessionOptions(threads));
      const loadMs = performance.now() - t0;
      const size = src.size ?? SIZE;
      const bench = new Bench(session, makeFrames(8, size), size);

      const configs: [Mode, number][] = [];
      for (const b of batches) {
        configs.push(['batch', b]);
        if (b > 1) configs.push(['seq', b]);
      }
      // Warm-up: every shape a few times (ORT plans/allocates per shape), >= 0.5 s each.
      for (const [mode, b] of configs) await bench.measure(mode, b, 500, 3, []);

      const samples = configs.map((): Sample[] => []);
      const perRound = (seconds * 1000) / rounds;
      for (let r = 0; r < rounds; r++) {
        for (let i = 0; i < configs.length; i++) {
          const idx = (i + r * 3) % configs.length; // rotate the order each round
          const [mode, b] = configs[idx]!;
          await bench.measure(mode, b, perRound, 2, samples[idx]!);
        }
      }
      configs.forEach(([mode, b], i) => rows.push(summarize(src.name, threads, b, mode, samples[i]!)));
      console.error(
        `  ${src.name}, ${threads} thread(s): load ${loadMs.toFixed(0)} ms, ` +
          `blocks discarded for other CPU load ${bench.discarded}, kept although noisy ${bench.noisy}, ` +
          `checksum ${bench.checksum.toFixed(3)}`,
      );
      await session.release();
    }
  }
  printTable(rows);
  console.log(`\nloadavg at end ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

function sessionOptions(threads: number): ort.InferenceSession.SessionOptions {
  return { executionProviders: ['cpu'], graphOptimizationLevel: 'all', intraOpNumThreads: threads, logSeverityLevel: 3 };
}

function printTable(rows: Row[]): void {
  const f = (v: number, d = 2): string =>
    v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v >= 0.1 ? v.toFixed(d) : v.toFixed(3);
  const header = [
    'model',
    'thr',
    'B',
    'batch run ms (med/p90)',
    'batch fps',
    'B x batch-1 ms (med/p90)',
    'seq fps',
    'batch/seq fps',
    'latency 1st frame: batch vs seq ms',
    'runs (batch/seq)',
  ];
  const lines: string[][] = [header];
  const key = (r: Row): string => `${r.model}|${r.threads}|${r.b}`;
  const seqs = new Map(rows.filter((r) => r.mode === 'seq').map((r) => [key(r), r]));
  const ones = new Map(rows.filter((r) => r.mode === 'batch' && r.b === 1).map((r) => [`${r.model}|${r.threads}`, r]));
  for (const r of rows.filter((x) => x.mode === 'batch')) {
    // B = 1: the sequential baseline is the batch-1 row itself.
    const s = r.b === 1 ? r : seqs.get(key(r));
    const one = ones.get(`${r.model}|${r.threads}`);
    const seqFps = s?.fps ?? (one ? one.fps : NaN);
    lines.push([
      r.model,
      String(r.threads),
      String(r.b),
      `${f(r.median)} / ${f(r.p90)}`,
      f(r.fps, 1),
      s ? `${f(s.median)} / ${f(s.p90)}` : '-',
      f(seqFps, 1),
      `${((r.fps / seqFps - 1) * 100 >= 0 ? '+' : '')}${((r.fps / seqFps - 1) * 100).toFixed(0)}%`,
      `${f(r.median)} vs ${f(s?.firstMedian ?? r.median)}`,
      `${r.runs}/${s && s !== r ? s.runs : '-'}`,
    ]);
  }
  const widths = header.map((_, c) => Math.max(...lines.map((l) => l[c]!.length)));
  const fmt = (l: string[]): string => '| ' + l.map((v, c) => v.padEnd(widths[c]!)).join(' | ') + ' |';
  console.log(fmt(lines[0]!));
  console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
  for (const l of lines.slice(1)) console.log(fmt(l));
}

await main();
