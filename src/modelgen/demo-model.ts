/**
 * The demo model: an honest nearest-colour classifier over the image's mean colour, generated
 * at runtime so the demo needs no download. It expects ImageNet-preset preprocessing (RGB,
 * value = (pixel/255 - mean[c]) / std[c]) like a real classifier, so the demo exercises the same
 * preprocessing path as real models.
 *
 * Maths: with x the per-channel mean (normalized space) and n_k palette colour k normalized the
 * same way, logit_k = -T * ||x - n_k||^2 = 2T n_k.x - T||n_k||^2 - T||x||^2. The last term is
 * the same for every k, so it is dropped (softmax/argmax unchanged) and the rest is a single
 * MatMul + Add.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEMO_PALETTE } from '../camera/palette.js';
import { encodeModel, floatTensor, int64Tensor, type NodeDef, type TensorDef } from './onnx-writer.js';

export interface DemoModelOptions {
  /** Input height = width; default 224. */
  size?: number;
  /** 'nchw' ([B,3,S,S], default) or 'nhwc' ([B,S,S,3]). */
  layout?: 'nchw' | 'nhwc';
  /** Element type of the graph input and output; float16 computes in float32 inside. */
  dtype?: 'float32' | 'float16';
  /** 'logits' (default) or 'probabilities' (a Softmax is appended). */
  output?: 'logits' | 'probabilities';
  /** 'fixed' (batch dim 1, default) or 'dynamic' (symbolic dim 'batch_size'). */
  batch?: 'fixed' | 'dynamic';
  /** Output [B,K,1,1] instead of [B,K], like some Caffe2-exported classifiers. */
  outputRank4?: boolean;
  /**
   * Tests only: every run on a bright frame (mean above the ImageNet mean) fails with a reshape
   * error, dark frames work. A model that passes validation on dark images and then fails in
   * production, to exercise the post-activation rollback.
   */
  failWhenBright?: boolean;
  inputName?: string;
  outputName?: string;
}

const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

/**
 * Sharpness of the softmax. Nearest palette colours (orange/yellow) are ~1.6 apart in squared
 * normalized distance, so T=4 gives a pure colour > 99% while a greyish real scene stays unsure.
 */
export const DEMO_TEMPERATURE = 4;

function normalize(rgb: readonly [number, number, number]): [number, number, number] {
  return [0, 1, 2].map((c) => (rgb[c]! / 255 - IMAGENET_MEAN[c]!) / IMAGENET_STD[c]!) as [number, number, number];
}

/** Bytes of the demo .onnx model (opset 13). */
export function buildDemoModel(opts: DemoModelOptions = {}): Uint8Array {
  const size = opts.size ?? 224;
  const layout = opts.layout ?? 'nchw';
  const dtype = opts.dtype ?? 'float32';
  const inputName = opts.inputName ?? 'input';
  const outputName = opts.outputName ?? 'output';
  const batch: number | string = opts.batch === 'dynamic' ? 'batch_size' : 1;
  const K = DEMO_PALETTE.length;
  const T = DEMO_TEMPERATURE;

  const weights: number[] = new Array<number>(3 * K).fill(0);
  const bias: number[] = [];
  DEMO_PALETTE.forEach((colour, k) => {
    const n = normalize(colour.rgb);
    n.forEach((v, c) => (weights[c * K + k] = 2 * T * v)); // W is [3,K] row-major
    bias.push(-T * n.reduce((a, v) => a + v * v, 0));
  });
  const initializers: TensorDef[] = [floatTensor('W', [3, K], weights), floatTensor('b', [K], bias)];

  const nodes: NodeDef[] = [];
  let x = inputName;
  // Every step takes the previous value and names its own output; keeps the optional steps terse.
  const step = (op: string, extraInputs: string[], attrs?: NodeDef['attrs']): void => {
    const out = `${op.toLowerCase()}_${nodes.length}`;
    nodes.push({ op, name: out, inputs: [x, ...extraInputs], outputs: [out], ...(attrs ? { attrs } : {}) });
    x = out;
  };

  // Average in float32: summing 50k fp16 values would lose precision (and CPU kernels for
  // fp16 reductions are spotty).
  if (dtype === 'float16') step('Cast', [], { to: { i: 1 } });
  // keepdims=0 over the spatial axes leaves [B,3] whatever B is, so dynamic batch just works.
  step('ReduceMean', [], { axes: { ints: layout === 'nchw' ? [2, 3] : [1, 2] }, keepdims: { i: 0 } });
  step('MatMul', ['W']);
  step('Add', ['b']);
  if (opts.output === 'probabilities') step('Softmax', [], { axis: { i: -1 } });
  if (opts.failWhenBright) {
    // shape = [[1,K],[1,K-1]][mean(input) > 0]; reshaping K values to [1,K-1] fails at run time.
    const logits = x;
    initializers.push(int64Tensor('bomb_shapes', [2, 2], [1, K, 1, K - 1]), floatTensor('bomb_zero', [], [0]));
    nodes.push({ op: 'ReduceMean', name: 'bomb_mean', inputs: [inputName], outputs: ['bomb_mean'], attrs: { keepdims: { i: 0 } } });
    nodes.push({ op: 'Greater', name: 'bomb_bright', inputs: ['bomb_mean', 'bomb_zero'], outputs: ['bomb_bright'] });
    nodes.push({ op: 'Cast', name: 'bomb_index', inputs: ['bomb_bright'], outputs: ['bomb_index'], attrs: { to: { i: 7 } } });
    nodes.push({ op: 'Gather', name: 'bomb_shape', inputs: ['bomb_shapes', 'bomb_index'], outputs: ['bomb_shape'], attrs: { axis: { i: 0 } } });
    x = logits;
    step('Reshape', ['bomb_shape']);
  }
  if (opts.outputRank4) {
    // Opset 13 Unsqueeze takes axes as an input, not an attribute.
    initializers.push(int64Tensor('unsqueeze_axes', [2], [2, 3]));
    step('Unsqueeze', ['unsqueeze_axes']);
  }
  if (dtype === 'float16') step('Cast', [], { to: { i: 10 } });
  // The last node writes the graph output directly (no Identity needed).
  const last = nodes[nodes.length - 1]!;
  last.outputs = [outputName];

  const inputShape = layout === 'nchw' ? [batch, 3, size, size] : [batch, size, size, 3];
  const outputShape = opts.outputRank4 ? [batch, K, 1, 1] : [batch, K];
  return encodeModel({
    name: 'edge-classifier-demo-colours',
    inputs: [{ name: inputName, type: dtype, shape: inputShape }],
    outputs: [{ name: outputName, type: dtype, shape: outputShape }],
    nodes,
    initializers,
    opset: 13,
  });
}

/** The demo model's labels file: one palette name per line, in output order. */
export function demoLabels(): string {
  return DEMO_PALETTE.map((c) => c.name).join('\n') + '\n';
}

/** Writes colors.onnx and colors.labels.txt into dir (created if missing). */
export async function writeDemoModel(
  dir: string,
  opts: DemoModelOptions = {},
): Promise<{ modelPath: string; labelsPath: string }> {
  await mkdir(dir, { recursive: true });
  const modelPath = join(dir, 'colors.onnx');
  const labelsPath = join(dir, 'colors.labels.txt');
  // Write-then-rename so a daemon starting concurrently never loads a half-written model.
  const tmp = `${modelPath}.${process.pid}.tmp`;
  await writeFile(tmp, buildDemoModel(opts));
  await rename(tmp, modelPath);
  await writeFile(labelsPath, demoLabels());
  return { modelPath, labelsPath };
}
