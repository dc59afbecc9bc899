/**
 * Benchmark: the validation gate's margins on the real models of ../shared, across CPUs.
 *
 * Records, on each CPU, every image's full probability vector through the daemon's own code path
 * (`classify --top-k 1000`: sharp preprocessing + onnxruntime in the inference worker), for the
 * good models and for controls that must be refused (wrong channel order, wrong preset, one
 * layer's weights negated or zeroed). Then judges every (publisher CPU, device CPU) pair with the
 * gate's own functions (src/updates/validation-gate.ts) at the config's default thresholds, and
 * prints a table: cross-CPU good models must pass, every control must fail.
 *
 * CPUs: this machine natively; `haswell`: the same x64 node under `qemu-x86_64-static -cpu
 * Haswell` (AVX2 without VNNI or AVX-512, which MLAS then dispatches to its AVX2 int8 kernels);
 * `arm64`: the arm64 tree of test/arm64/prepare.sh emulated as a Pi 4 (Cortex-A72). Emulation
 * changes which kernels run, not what they compute; its speed means nothing.
 *
 *   npm run build && bash test/arm64/prepare.sh
 *   npx vite-node test/bench/validation-margins.ts -- [--cpus native,haswell,arm64] [--controls native] [--out .tmp/validation-margins]
 *
 * Recordings are cached per CPU in --out; delete a CPU's folder to record it again.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadLabels } from '../../src/vision/labels.js';
import { listInitializers, tamperInitializer, type Tamper } from '../../src/modelgen/onnx-tamper.js';
import { accuracyDrop, judgeSet, referenceTop, type GateThresholds, type ReferenceImage } from '../../src/updates/validation-gate.js';
import { currentPlatform } from '../../src/updates/platform.js';
import { DEFAULT_GATE } from '../../src/updates/validator.js';
import { REPO } from '../helpers/cli.js';
import { sharedPath, requireShared } from '../real/shared.js';
import { arm64NodeCommand, ARM64_APP } from '../arm64/emulator.js';

const { values } = parseArgs({
  options: {
    cpus: { type: 'string', default: 'native,haswell,arm64' },
    controls: { type: 'string', default: 'native' },
    out: { type: 'string', default: join(REPO, '.tmp', 'validation-margins') },
  },
});
requireShared();
const OUT = values.out;
const cpus = values.cpus.split(',');
const controlCpus = new Set(values.controls.split(','));

const MODELS = [
  { name: 'mobilenetv2-12-int8', preset: 'imagenet', other: 'caffe-bgr', swapped: 'bgr' },
  { name: 'shufflenet-v2-12-qdq', preset: 'imagenet', other: 'caffe-bgr', swapped: 'bgr' },
  { name: 'squeezenet1.0-fp16', preset: 'caffe-bgr', other: 'imagenet', swapped: 'rgb' },
] as const;
const SETS = ['photos', 'imagenet-50'] as const;
const TAMPERS: { id: string; how: Tamper; where: 'first' | 'mid' | 'last' }[] = [
  { id: 'negate-first', how: 'negate', where: 'first' },
  { id: 'negate-mid', how: 'negate', where: 'mid' },
  { id: 'zero-mid', how: 'zero', where: 'mid' },
  { id: 'negate-last', how: 'negate', where: 'last' },
];

/** How to run the CLI on each CPU: [command prefix, working directory]. */
function runner(cpu: string): { prefix: string[]; cwd: string } {
  if (cpu === 'native') return { prefix: [process.execPath], cwd: REPO };
  if (cpu === 'haswell') return { prefix: ['qemu-x86_64-static', '-cpu', 'Haswell', process.execPath], cwd: REPO };
  if (cpu === 'arm64') return { prefix: arm64NodeCommand([]), cwd: ARM64_APP };
  throw new Error(`unknown CPU ${cpu}: native, haswell or arm64`);
}

/** The tampered copies of a model: one conv-like weight tensor (4-d, several filters) per position. */
function tamperedModels(model: string): Map<string, string> {
  const dir = join(OUT, 'controls');
  mkdirSync(dir, { recursive: true });
  const bytes = readFileSync(sharedPath('models', `${model}.onnx`));
  const convs = listInitializers(bytes).filter((i) => i.raw && i.dims.length === 4 && (i.dims[0] ?? 0) > 1);
  const pick = { first: convs[0], mid: convs[Math.floor(convs.length / 2)], last: convs.at(-1) };
  const out = new Map<string, string>();
  for (const t of TAMPERS) {
    const path = join(dir, `${model}.${t.id}.onnx`);
    if (!existsSync(path)) writeFileSync(path, tamperInitializer(bytes, pick[t.where]!.name, t.how));
    out.set(t.id, path);
  }
  return out;
}

function record(cpu: string, file: string, model: string, args: string[]): void {
  if (existsSync(file)) return;
  const { prefix, cwd } = runner(cpu);
  const cmd = [...prefix, join(cwd, 'bin', 'edge-classifier'), 'classify', '--model', model, '--labels', sharedPath('labels', 'synset.txt'), '--top-k', '1000', ...args];
  const t0 = performance.now();
  const r = spawnSync(cmd[0]!, cmd.slice(1), { cwd, encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.status !== 0 && !r.stdout) throw new Error(`${cpu}: ${cmd.join(' ')} failed: ${r.stderr.slice(-2000)}`);
  writeFileSync(file, r.stdout);
  console.error(`recorded ${file} in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}

function recordAll(cpu: string): void {
  const dir = join(OUT, cpu);
  mkdirSync(dir, { recursive: true });
  if (cpu === 'native') writeFileSync(join(dir, 'platform.json'), JSON.stringify(currentPlatform()));
  for (const m of MODELS) {
    const variants: [string, string, string[]][] = [['good', sharedPath('models', `${m.name}.onnx`), ['--preset', m.preset]]];
    if (controlCpus.has(cpu)) {
      variants.push(['channels', sharedPath('models', `${m.name}.onnx`), ['--preset', m.preset, '--preprocess', JSON.stringify({ channel_order: m.swapped })]]);
      variants.push(['preset', sharedPath('models', `${m.name}.onnx`), ['--preset', m.other]]);
      for (const [id, path] of tamperedModels(m.name)) variants.push([id, path, ['--preset', m.preset]]);
    }
    for (const set of SETS) {
      // fp16 arithmetic under qemu's x86 emulation runs about 1 image a quarter-hour: photos only there.
      if (cpu === 'haswell' && m.name.includes('fp16') && set !== 'photos') continue;
      for (const [id, model, args] of variants) record(cpu, join(dir, `${m.name}~${id}.${set}.jsonl`), model, [...args, sharedPath('images', set)]);
    }
  }
}

type Vectors = Map<string, Float64Array>;
function load(file: string): Vectors | undefined {
  if (!existsSync(file)) return undefined;
  const out: Vectors = new Map();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line) as { file: string; top?: { index: number; score: number }[] };
    if (!r.top) continue;
    const v = new Float64Array(1000);
    for (const t of r.top) v[t.index] = t.score;
    out.set(r.file, v);
  }
  return out;
}

const labels = await loadLabels(sharedPath('labels', 'synset.txt'));
/** A labels file in the wrong order: every name moves 7919 places (a permutation of 1000). */
const shuffled = labels.map((_, i) => labels[(i * 7919 + 13) % 1000]!);
const truth = new Map<string, string[]>();
for (const set of SETS) {
  for (const line of readFileSync(sharedPath('images', `${set}.tsv`), 'utf8').split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const [file, indices] = line.split('\t');
    if (file && indices) truth.set(`${set}/${file}`, indices.split(',').map((i) => labels[Number(i)]!));
  }
}

interface Row {
  model: string;
  publisher: string;
  device: string;
  variant: string;
  expect: 'pass' | 'refuse';
  text: string;
  ok: boolean;
}

function judge(m: string, pub: string, dev: string, variant: string, devModel = m, labelNames = labels): Row | undefined {
  const images: { ref: ReferenceImage; probs: Float64Array }[] = [];
  for (const set of SETS) {
    const R = load(join(OUT, pub, `${m}~good.${set}.jsonl`));
    const D = load(join(OUT, dev, `${devModel}~${variant === 'shuffled-labels' || variant.startsWith('other:') ? 'good' : variant}.${set}.jsonl`));
    if (!R || !D) continue; // a set not recorded on one of the two CPUs
    for (const [file, r] of R) {
      const d = D.get(file);
      if (!d) continue;
      const top = referenceTop(r);
      images.push({ ref: { expectedIndex: top[0]!.index, top, truth: truth.get(`${set}/${file}`) }, probs: d });
    }
  }
  if (images.length === 0) return undefined;
  const gate: GateThresholds = DEFAULT_GATE;
  const v = judgeSet(images, labelNames, gate, 'x');
  const published = { labelled: images.length, correct: images.filter((i) => i.ref.truth!.includes(labelNames[i.ref.expectedIndex] ?? '')).length };
  const drop = accuracyDrop(v, published, gate.max_accuracy_drop, 'p');
  const refused = v.reasons.length > 0 || drop !== undefined;
  const expect = variant === 'good' ? 'pass' : 'refuse';
  const why = [v.matched < gate.min_top1_agreement * v.compared ? 'top-1' : '', (v.meanDistance ?? 0) > gate.max_mean_distance ? 'distance' : '', v.correct < gate.min_accuracy * v.labelled ? 'accuracy' : '', drop ? 'drop' : '']
    .filter(Boolean)
    .join('+');
  // The gate before reference vectors: every image's top-1 against the publisher's, 90% needed.
  const before = judgeSet(images.map((i) => ({ ref: { expectedIndex: i.ref.expectedIndex }, probs: i.probs })), labelNames, { ...gate, min_top1_agreement: 0.9 }, 'x');
  const text = `before: top-1 ${before.matched}/${before.compared} ${before.reasons.length ? 'refused' : 'passed'} | now: confident top-1 ${v.matched}/${v.compared}  distance ${v.meanDistance?.toFixed(3)}  accuracy ${v.correct}/${v.labelled} (publisher ${published.correct}/${published.labelled})  ${refused ? `refused (${why})` : 'passes'}`;
  return { model: m, publisher: pub, device: dev, variant, expect, text, ok: (expect === 'pass') !== refused };
}

for (const cpu of cpus) recordAll(cpu);
const native = JSON.parse(readFileSync(join(OUT, 'native', 'platform.json'), 'utf8')) as { cpu: string; kernels: string };
console.log(`native = ${native.kernels} (${native.cpu}); haswell = x64-avx2 under qemu; arm64 = Cortex-A72 under qemu`);
console.log(`thresholds: ${JSON.stringify(DEFAULT_GATE)}`);
const rows: Row[] = [];
for (const m of MODELS) {
  for (const pub of cpus) {
    for (const dev of cpus) {
      const r = judge(m.name, pub, dev, 'good');
      if (r) rows.push(r);
      for (const v of ['channels', 'preset', ...TAMPERS.map((t) => t.id)]) {
        const c = judge(m.name, pub, dev, v);
        if (c) rows.push(c);
      }
      for (const o of MODELS) {
        if (o.name === m.name) continue;
        const c = judge(m.name, pub, dev, `other:${o.name}`, o.name);
        if (c) rows.push(c);
      }
    }
    const s = judge(m.name, pub, pub, 'shuffled-labels', m.name, shuffled);
    if (s) rows.push(s);
  }
}
let current = '';
for (const r of rows) {
  if (r.model !== current) console.log(`\n== ${(current = r.model)}`);
  console.log(`  ${r.ok ? '  ' : '!!'} published ${r.publisher.padEnd(7)} device ${r.device.padEnd(7)} ${r.variant.padEnd(28)} ${r.text}`);
}
const wrong = rows.filter((r) => !r.ok);
console.log(`\n${rows.length} judgements: ${rows.filter((r) => r.expect === 'pass').length} good pairs, ${rows.filter((r) => r.expect === 'refuse').length} controls; ${wrong.length} wrong`);
process.exitCode = wrong.length > 0 ? 1 : 0;
