/**
 * The ResNet50 v1.5 topology with deterministic, seeded synthetic weights: a stand-in for a
 * pretrained ResNet50 (none can be downloaded here) with the exact shape, parameter count and
 * compute of the real one, for speed, size and memory measurements. Its outputs mean nothing.
 *
 * As exported from a trained model with batch norm folded: every Conv carries a bias, there is
 * no BatchNormalization node. v1.5 puts the stride on the 3x3 conv of a downsampling block
 * (v1 put it on the first 1x1), as torchvision and the ONNX model zoo's resnet50-v1.5 do.
 *
 * Weights: He-scaled uniform (variance 2/fan_in keeps a ReLU network's activations at a steady
 * magnitude), times a per-output-channel factor standing in for the folded BN gamma/sigma
 * (real folded weights vary by channel, which is what per-channel quantization is for). The
 * last conv of every residual branch is damped (like zero-init-gamma/Fixup) so 16 additions
 * don't blow the residual stream up (measured, seed 1: pooled features average ~2.6, vary
 * ~1.1 across images; damping 1.0 gives ~3000). fc.bias here is only a random start:
 * synth.ts centres it on measured features, without which every image gets the same top-1.
 */
import type { ModelDef, NodeDef, TensorDef } from './onnx-writer.js';
import { seededRandom } from '../core/seeded-random.js';

/** A value's shape; dim 0 is the symbolic batch dim. */
export type Shape = (number | string)[];

export interface Resnet50Graph {
  model: ModelDef;
  /** Shape of every activation (graph input and node output), for exposing them as outputs. */
  shapes: Map<string, Shape>;
  /** Weights + biases (what "25.6 M parameters" counts). */
  parameters: number;
}

export const RESNET50_INPUT = 'input';
export const RESNET50_OUTPUT = 'output';
export const RESNET50_CLASSES = 1000;
const BATCH = 'batch_size';
/** Blocks per stage and the bottleneck width of each stage (the output is 4x wider). */
const STAGES = [
  { blocks: 3, width: 64 },
  { blocks: 4, width: 128 },
  { blocks: 6, width: 256 },
  { blocks: 3, width: 512 },
] as const;
const EXPANSION = 4;
/**
 * Gain of a residual branch's last conv. With 1.0 the stream's magnitude roughly doubles per
 * stage; 0.25 keeps it within a few x of the input's while the branches still change it.
 */
const BRANCH_DAMPING = 0.25;
/** Folded-BN bias range, in units of the (roughly unit) activation magnitude. */
const BIAS_RANGE = 0.1;

/** A 32-bit hash of (seed, tensor index): each tensor gets its own independent seededRandom stream. */
function streamSeed(seed: number, index: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  return (h ^ (h >>> 15)) >>> 0;
}

class Builder {
  readonly nodes: NodeDef[] = [];
  readonly initializers: TensorDef[] = [];
  readonly shapes = new Map<string, Shape>();
  parameters = 0;
  private tensors = 0;

  constructor(private readonly seed: number) {}

  /** Filled row by row ([out][fanIn]): He-uniform times a per-row (output channel) factor. */
  private weight(name: string, dims: number[], gain: number): string {
    const rows = dims[0]!;
    const fanIn = dims.slice(1).reduce((a, b) => a * b, 1);
    const data = new Float32Array(rows * fanIn);
    const rand = seededRandom(streamSeed(this.seed, this.tensors++));
    // Uniform on [-a, a] has variance a^2/3; a = sqrt(6/fanIn) gives He's 2/fanIn.
    const a = gain * Math.sqrt(6 / fanIn);
    for (let r = 0; r < rows; r++) {
      // exp(U(-0.5, 0.5)): channel gains within ~[0.6, 1.65], like folded BN.
      const scale = 2 * a * Math.exp(rand() - 0.5);
      const base = r * fanIn;
      for (let i = 0; i < fanIn; i++) data[base + i] = (rand() - 0.5) * scale;
    }
    return this.add(name, dims, data);
  }

  private bias(name: string, n: number, range: number): string {
    const data = new Float32Array(n);
    const rand = seededRandom(streamSeed(this.seed, this.tensors++));
    for (let i = 0; i < n; i++) data[i] = (rand() * 2 - 1) * range;
    return this.add(name, [n], data);
  }

  private add(name: string, dims: number[], data: Float32Array): string {
    this.initializers.push({ name, type: 'float32', dims, data });
    this.parameters += data.length;
    return name;
  }

  private node(op: string, name: string, inputs: string[], shape: Shape, attrs?: NodeDef['attrs']): string {
    this.nodes.push({ op, name, inputs, outputs: [name], ...(attrs ? { attrs } : {}) });
    this.shapes.set(name, shape);
    return name;
  }

  /** Conv with folded BN (a bias), "same" padding for odd kernels. */
  conv(x: string, name: string, cout: number, k: number, stride: number, gain = 1): string {
    const [n, cin, h, w] = this.shapes.get(x) as [string, number, number, number];
    const pad = (k - 1) / 2;
    const out = (d: number): number => Math.floor((d + 2 * pad - k) / stride) + 1;
    const W = this.weight(`${name}.weight`, [cout, cin, k, k], gain);
    const B = this.bias(`${name}.bias`, cout, BIAS_RANGE);
    return this.node('Conv', name, [x, W, B], [n, cout, out(h), out(w)], {
      kernel_shape: { ints: [k, k] },
      strides: { ints: [stride, stride] },
      pads: { ints: [pad, pad, pad, pad] },
    });
  }

  relu(x: string, name: string): string {
    return this.node('Relu', name, [x], this.shapes.get(x)!);
  }

  input(name: string, shape: Shape): string {
    this.shapes.set(name, shape);
    return name;
  }

  maxpool(x: string, name: string): string {
    const [n, c, h, w] = this.shapes.get(x) as [string, number, number, number];
    const out = (d: number): number => Math.floor((d + 2 - 3) / 2) + 1;
    return this.node('MaxPool', name, [x], [n, c, out(h), out(w)], {
      kernel_shape: { ints: [3, 3] },
      strides: { ints: [2, 2] },
      pads: { ints: [1, 1, 1, 1] },
    });
  }

  addRelu(a: string, b: string, name: string): string {
    return this.relu(this.node('Add', `${name}.add`, [a, b], this.shapes.get(a)!), `${name}.relu`);
  }

  /** GlobalAveragePool + Flatten + Gemm (transB: weights stored [classes, features] like torch). */
  head(x: string, classes: number, output: string): string {
    const c = this.shapes.get(x)![1] as number;
    const pooled = this.node('GlobalAveragePool', 'avgpool', [x], [BATCH, c, 1, 1]);
    const flat = this.node('Flatten', 'flatten', [pooled], [BATCH, c], { axis: { i: 1 } });
    // gain 1/sqrt(2): plain (not He) variance 1/fanIn, the input is not followed by a ReLU.
    const W = this.weight('fc.weight', [classes, c], Math.SQRT1_2);
    const B = this.bias('fc.bias', classes, BIAS_RANGE);
    return this.node('Gemm', output, [flat, W, B], [BATCH, classes], { transB: { i: 1 } });
  }
}

/** One bottleneck block: 1x1 reduce, 3x3 (strided in v1.5), 1x1 expand, plus the shortcut. */
function bottleneck(b: Builder, x: string, name: string, width: number, stride: number): string {
  const cin = b.shapes.get(x)![1] as number;
  const cout = width * EXPANSION;
  let y = b.relu(b.conv(x, `${name}.conv1`, width, 1, 1), `${name}.relu1`);
  y = b.relu(b.conv(y, `${name}.conv2`, width, 3, stride), `${name}.relu2`);
  y = b.conv(y, `${name}.conv3`, cout, 1, 1, BRANCH_DAMPING);
  // Projection shortcut where the shape changes (the first block of each stage).
  const shortcut = stride !== 1 || cin !== cout ? b.conv(x, `${name}.downsample`, cout, 1, stride) : x;
  return b.addRelu(y, shortcut, name);
}

/** Builds the fp32 ResNet50 v1.5 graph: `input` [N,3,224,224] -> `output` [N,1000] logits. */
export function buildResnet50(seed: number): Resnet50Graph {
  const b = new Builder(seed);
  let x = b.input(RESNET50_INPUT, [BATCH, 3, 224, 224]);
  x = b.maxpool(b.relu(b.conv(x, 'conv1', 64, 7, 2), 'relu'), 'maxpool');
  STAGES.forEach((stage, s) => {
    for (let i = 0; i < stage.blocks; i++) {
      const stride = s > 0 && i === 0 ? 2 : 1;
      x = bottleneck(b, x, `layer${s + 1}.${i}`, stage.width, stride);
    }
  });
  b.head(x, RESNET50_CLASSES, RESNET50_OUTPUT);

  const model: ModelDef = {
    name: 'edge-classifier-synthetic-resnet50-v1.5',
    inputs: [{ name: RESNET50_INPUT, type: 'float32', shape: b.shapes.get(RESNET50_INPUT)! }],
    outputs: [{ name: RESNET50_OUTPUT, type: 'float32', shape: [BATCH, RESNET50_CLASSES] }],
    nodes: b.nodes,
    initializers: b.initializers,
    opset: 13,
  };
  return { model, shapes: b.shapes, parameters: b.parameters };
}
