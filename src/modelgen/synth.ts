/**
 * `model synth`: a synthetic ResNet50 v1.5 (fp32, or int8 QDQ) for speed, size and memory
 * measurements and for the demo, generated on demand (never committed: ~100 MB fp32).
 * Its 1000 labels are meaningless: the weights are seeded random numbers, not trained.
 *
 * Two steps need the fp32 network's actual activations, so this runs it once with
 * onnxruntime on a few generated images ("probe"):
 * - Head centring. A random ReLU network's pooled features share a large input-independent
 *   part (each channel has its own mean), which alone would pick the same top-1 class for any
 *   image. fc.bias is set to cancel it (b_k = -W_k . mean feature), so the argmax depends on
 *   the input, as a classifier's does, and fp32-vs-int8 agreement means something.
 * - int8 calibration: the [min, max] of every tensor the QDQ graph quantizes.
 * Same seed, same onnxruntime build and CPU: same bytes. Across CPUs the probe's float
 * rounding may differ in the last bits, and with it the file's hash (not its behaviour).
 */
import * as ort from 'onnxruntime-node';
import { encodeModel, type ModelDef } from './onnx-writer.js';
import { buildResnet50, RESNET50_CLASSES, RESNET50_INPUT, type Resnet50Graph } from './resnet50.js';
import { calibrationTensors, quantizeQdq, type ActivationType, type Range } from './quantize-qdq.js';

export type Precision = 'fp32' | 'int8';

export interface SynthOptions {
  precision: Precision;
  seed: number;
  /** int8 only: activation element type (weights are always int8); default uint8. */
  activations?: ActivationType;
  /** Images the probe runs (centring and calibration); default 8. */
  calibrationImages?: number;
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

interface ProbeResult {
  ranges: Map<string, Range>;
  meanFeature: Float64Array;
}

/** Runs the fp32 graph with `tensors` (and the features) exposed as outputs, one image at a time. */
async function probe(graph: Resnet50Graph, tensors: string[], images: Float32Array): Promise<ProbeResult> {
  const names = [...new Set([...tensors.filter((t) => t !== RESNET50_INPUT), FEATURES])];
  const model: ModelDef = {
    ...graph.model,
    outputs: names.map((name) => ({ name, type: 'float32', shape: graph.shapes.get(name)! })),
  };
  // One thread: a fixed reduction order whatever the core count, so the result is reproducible.
  const session = await ort.InferenceSession.create(encodeModel(model), { intraOpNumThreads: 1 });
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
  try {
    for (let n = 0; n < count; n++) {
      const image = images.subarray(n * IMAGE, (n + 1) * IMAGE);
      const results = await session.run({ [RESNET50_INPUT]: new ort.Tensor('float32', image, [1, 3, SIZE, SIZE]) });
      if (tensors.includes(RESNET50_INPUT)) track(RESNET50_INPUT, image);
      for (const name of names) track(name, results[name]!.data as Float32Array);
      const f = results[FEATURES]!.data as Float32Array;
      for (let j = 0; j < f.length; j++) meanFeature[j] = meanFeature[j]! + f[j]! / count;
      for (const t of Object.values(results)) t.dispose();
    }
  } finally {
    await session.release();
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

/** The model's bytes and parameter count. */
export async function synthesizeResnet50Detailed(opts: SynthOptions): Promise<SynthResult> {
  // The PRNGs take 32-bit state: a larger seed would alias a smaller one.
  if (!(Number.isInteger(opts.seed) && opts.seed >= 0 && opts.seed <= 0xffffffff)) {
    throw new RangeError(`seed must be an integer 0..4294967295, got ${opts.seed}`);
  }
  const graph = buildResnet50(opts.seed);
  const tensors = opts.precision === 'int8' ? calibrationTensors(graph.model) : [];
  const images = syntheticImages(opts.calibrationImages ?? 8, opts.seed + PROBE_SEED_OFFSET);
  const { ranges, meanFeature } = await probe(graph, tensors, images);
  centreHead(graph, meanFeature);
  const model = opts.precision === 'int8' ? quantizeQdq(graph.model, ranges, opts.activations) : graph.model;
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
