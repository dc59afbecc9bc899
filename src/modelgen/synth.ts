/**
 * `model synth`: a synthetic ResNet50 v1.5 (fp32, or int8 QDQ) for speed, size and memory
 * measurements and for the demo, generated on demand (never committed: ~100 MB fp32).
 * Its 1000 labels are meaningless: the weights are seeded random numbers, not trained.
 *
 * Two steps need the fp32 network's actual activations, so it is run on a few generated
 * images first ("probe"):
 * - Head centring. A random ReLU network's pooled features share a large input-independent
 *   part (each channel has its own mean), which alone would pick the same top-1 class for any
 *   image. fc.bias is set to cancel it (b_k = -W_k . mean feature), so the argmax depends on
 *   the input, as a classifier's does, and fp32-vs-int8 agreement means something.
 * - int8 calibration: the [min, max] of every tensor the QDQ graph quantizes.
 *
 * Same arch, precision and seed: the same bytes on any CPU. The probe does not use
 * onnxruntime, whose float results differ in the last bits between CPUs (and the file's
 * scales and biases with them): it runs reference-forward.ts, plain TypeScript whose every
 * operation is IEEE-754 arithmetic in a fixed order. The rest is integer PRNGs, Math.exp/sin
 * (V8's own fdlibm port, the same on every CPU) and Math.round. What could still change the
 * bytes: a change to this generator, or a JavaScript engine whose Math.exp/sin differ (the
 * test pins the sha256 of seed 1, so either would be noticed).
 * The probe runs at 112x112 (a quarter of the work): measured with seed 1, calibrating at
 * 112 or 224 gives the same int8-vs-fp32 agreement (15/16) and as many distinct top-1 classes
 * (13/16); at 56x56 the centring no longer works (7/16).
 */
import { encodeModel } from './onnx-writer.js';
import { buildResnet50, RESNET50_CLASSES, RESNET50_INPUT, type Resnet50Graph } from './resnet50.js';
import { calibrationTensors, quantizeQdq, type ActivationType, type Range } from './quantize-qdq.js';
import { runReference } from './reference-forward.js';

export type Precision = 'fp32' | 'int8';

/**
 * Bumped whenever a change here or in resnet50.ts/quantize-qdq.ts changes the bytes for a seed,
 * so caches of generated models (the demo's) know theirs are stale. 2: calibration in
 * TypeScript (1 used onnxruntime).
 */
export const SYNTH_VERSION = 2;

export interface SynthOptions {
  precision: Precision;
  seed: number;
  /** int8 only: activation element type (weights are always int8); default uint8. */
  activations?: ActivationType;
  /** Images the probe runs (centring and calibration); default 8. */
  calibrationImages?: number;
  /** calibrateResnet50(seed, calibrationImages), when the caller already has it. */
  calibration?: Calibration;
}

export interface SynthResult {
  bytes: Uint8Array;
  /** Weights + biases of the (fp32) network. */
  parameters: number;
}

const SIZE = 224;
const PLANE = SIZE * SIZE;
const IMAGE = 3 * PLANE;
const MEAN = [0.485, 0.456, 0.406] as const;
const STD = [0.229, 0.224, 0.225] as const;
/** The pooled feature vector the head reads (the Flatten output). */
const FEATURES = 'flatten';
/** The probe's images: the generated 224x224 ones, 2x2-averaged (see the top). */
const PROBE_SIZE = SIZE / 2;
/** The probe's images come from their own stream, so test images (other seeds) differ. */
const PROBE_SEED_OFFSET = 0x5eed;

/** xorshift32: deterministic and fast; images need no statistical quality. */
function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

/**
 * `count` generated 224x224 RGB images, ImageNet-normalized, NCHW float32: a colour gradient,
 * a few soft colour blobs, a sinusoidal texture and pixel noise. Not natural images, but with
 * their broad statistics (smooth regions, edges, some texture, values spanning [0, 1]).
 */
export function syntheticImages(count: number, seed: number): Float32Array {
  const out = new Float32Array(count * IMAGE);
  const rand = xorshift(seed * 2654435761 + 1);
  for (let n = 0; n < count; n++) {
    const g = [0, 1, 2].map(() => ({ base: rand(), dx: rand() - 0.5, dy: rand() - 0.5 }));
    const blobs = Array.from({ length: 3 }, () => ({
      x: rand() * SIZE, y: rand() * SIZE, r: 15 + rand() * 50, rgb: [rand(), rand(), rand()],
    }));
    const tex = { fx: rand() * 0.3, fy: rand() * 0.3, amp: rand() * 0.15 };
    const weights = new Float64Array(blobs.length);
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const wave = tex.amp * Math.sin(x * tex.fx + y * tex.fy);
        blobs.forEach((b, i) => (weights[i] = Math.exp(-((x - b.x) ** 2 + (y - b.y) ** 2) / (b.r * b.r))));
        for (let c = 0; c < 3; c++) {
          let v = g[c]!.base + (g[c]!.dx * x + g[c]!.dy * y) / SIZE + wave + (rand() - 0.5) * 0.1;
          for (let i = 0; i < blobs.length; i++) v = v * (1 - weights[i]!) + blobs[i]!.rgb[c]! * weights[i]!;
          out[n * IMAGE + c * PLANE + y * SIZE + x] = (Math.min(1, Math.max(0, v)) - MEAN[c]!) / STD[c]!;
        }
      }
    }
  }
  return out;
}

/**
 * What the probe measured for one seed: the int8 ranges and the mean pooled feature. Both
 * precisions of a seed use the same one, so a caller making both can compute it once.
 */
export interface Calibration {
  seed: number;
  images: number;
  ranges: Map<string, Range>;
  meanFeature: Float64Array;
}

/** One image of `images` (NCHW, 224x224), averaged 2x2 down to PROBE_SIZE. */
function probeImage(images: Float32Array, n: number): Float32Array {
  const out = new Float32Array(3 * PROBE_SIZE * PROBE_SIZE);
  for (let c = 0; c < 3; c++) {
    const plane = n * IMAGE + c * PLANE;
    for (let y = 0; y < PROBE_SIZE; y++) {
      for (let x = 0; x < PROBE_SIZE; x++) {
        const i = plane + 2 * y * SIZE + 2 * x;
        out[(c * PROBE_SIZE + y) * PROBE_SIZE + x] = (images[i]! + images[i + 1]! + images[i + SIZE]! + images[i + SIZE + 1]!) / 4;
      }
    }
  }
  return out;
}

/** Runs the fp32 graph (reference-forward.ts) on each image: ranges of `tensors`, mean features. */
async function probe(graph: Resnet50Graph, tensors: string[], images: Float32Array): Promise<Pick<Calibration, 'ranges' | 'meanFeature'>> {
  const wanted = new Set(tensors);
  const ranges = new Map<string, Range>();
  const meanFeature = new Float64Array(graph.shapes.get(FEATURES)![1] as number);
  const count = images.length / IMAGE;
  const track = (name: string, data: Float32Array): void => {
    const r = ranges.get(name) ?? { min: Infinity, max: -Infinity };
    for (let i = 0; i < data.length; i++) {
      const v = data[i]!;
      if (v < r.min) r.min = v;
      if (v > r.max) r.max = v;
    }
    ranges.set(name, r);
  };
  for (let n = 0; n < count; n++) {
    // The model's input range comes from the full-size image (averaging trims its extremes).
    if (wanted.has(RESNET50_INPUT)) track(RESNET50_INPUT, images.subarray(n * IMAGE, (n + 1) * IMAGE));
    await runReference(graph.model, { dims: [3, PROBE_SIZE, PROBE_SIZE], data: probeImage(images, n) }, (name, { data }) => {
      if (wanted.has(name) && name !== RESNET50_INPUT) track(name, data);
      if (name === FEATURES) for (let j = 0; j < data.length; j++) meanFeature[j] = meanFeature[j]! + data[j]! / count;
    });
  }
  return { ranges, meanFeature };
}

/** fc.bias -= fc.weight . meanFeature (in float64), removing the logits' input-independent part. */
function centreHead(graph: Resnet50Graph, meanFeature: Float64Array): void {
  const find = (name: string): Float32Array => graph.model.initializers.find((t) => t.name === name)!.data as Float32Array;
  const w = find('fc.weight');
  const b = find('fc.bias');
  const features = meanFeature.length;
  for (let k = 0; k < RESNET50_CLASSES; k++) {
    let dot = 0;
    for (let j = 0; j < features; j++) dot += w[k * features + j]! * meanFeature[j]!;
    b[k] = b[k]! - dot;
  }
}

function checkSeed(seed: number): void {
  // The PRNGs take 32-bit state: a larger seed would alias a smaller one.
  if (!(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff)) {
    throw new RangeError(`seed must be an integer 0..4294967295, got ${seed}`);
  }
}

/** The probe for a seed (the slow part of a synth: seconds of CPU; see the top). */
export async function calibrateResnet50(seed: number, images = 8): Promise<Calibration> {
  checkSeed(seed);
  const graph = buildResnet50(seed);
  const measured = await probe(graph, calibrationTensors(graph.model), syntheticImages(images, seed + PROBE_SEED_OFFSET));
  return { seed, images, ...measured };
}

/** The model's bytes and parameter count. */
export async function synthesizeResnet50Detailed(opts: SynthOptions): Promise<SynthResult> {
  checkSeed(opts.seed);
  const images = opts.calibrationImages ?? 8;
  const cal = opts.calibration ?? (await calibrateResnet50(opts.seed, images));
  if (cal.seed !== opts.seed || cal.images !== images) {
    throw new Error(`calibration is for seed ${cal.seed} (${cal.images} images), not seed ${opts.seed} (${images} images)`);
  }
  const graph = buildResnet50(opts.seed);
  centreHead(graph, cal.meanFeature);
  const model = opts.precision === 'int8' ? quantizeQdq(graph.model, cal.ranges, opts.activations) : graph.model;
  return { bytes: encodeModel(model), parameters: graph.parameters };
}

/** The .onnx bytes of a synthetic ResNet50 v1.5 (deterministic for a seed; see the top). */
export async function synthesizeResnet50(opts: SynthOptions): Promise<Uint8Array> {
  return (await synthesizeResnet50Detailed(opts)).bytes;
}

/** Labels for the synthetic model: placeholders, one per output, because the classes mean nothing. */
export function resnet50Labels(): string {
  return Array.from({ length: RESNET50_CLASSES }, (_, k) => `synthetic class ${k}`).join('\n') + '\n';
}
