/**
 * A plain TypeScript fp32 forward pass over the ops the synthetic ResNet50 uses (Conv, Relu,
 * MaxPool, Add, GlobalAveragePool, Flatten, Gemm), batch 1, NCHW, any input size.
 *
 * Why not onnxruntime: its kernels differ by CPU (AVX2 vs AVX-512 vs NEON, NCHWc block sizes,
 * FMA or not), so the same graph gives results that differ in the last bits from one machine to
 * another, and `model synth` derives the file's bytes from these results (calibrated scales,
 * the centred head). Here every value is computed by the same sequence of IEEE-754 double
 * operations (+, *, compare) and rounded to float32 when stored, in a fixed order, on every
 * CPU: the same input gives the same bits everywhere. It is ~20x slower than onnxruntime, so
 * `model synth` runs it on small (112x112) images.
 */
import type { ModelDef, NodeDef } from './onnx-writer.js';

export interface Activation {
  /** [C, H, W] (batch 1 implied); [C] after Flatten/Gemm. */
  dims: number[];
  data: Float32Array;
}

/** Called with every tensor the graph produces (and its input), in execution order. */
export type TensorVisitor = (name: string, value: Activation) => void;

const ints = (n: NodeDef, key: string, fallback: number[]): number[] => {
  const a = n.attrs?.[key];
  return a && 'ints' in a ? a.ints : fallback;
};

/** Lets timers and I/O run between two nodes: a whole pass takes seconds of CPU. */
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Runs `model` on one [3, H, W] image. Every produced tensor is handed to `visit`; a tensor no
 * later node reads is dropped right after, so memory stays at a few activations. The work is
 * synchronous, node by node, with the event loop let through in between.
 */
export async function runReference(model: ModelDef, input: Activation, visit: TensorVisitor): Promise<void> {
  const weights = new Map(model.initializers.map((t) => [t.name, t]));
  const lastUse = new Map<string, number>();
  model.nodes.forEach((n, i) => n.inputs.forEach((t) => lastUse.set(t, i)));
  const values = new Map<string, Activation>();
  const inputName = model.inputs[0]!.name;
  values.set(inputName, input);
  visit(inputName, input);
  const param = (name: string): Float32Array => {
    const t = weights.get(name);
    if (!t || !(t.data instanceof Float32Array)) throw new Error(`reference forward: ${name} is not a float32 initializer`);
    return t.data;
  };
  for (const [i, n] of model.nodes.entries()) {
    await yieldToEventLoop();
    const x = values.get(n.inputs[0]!);
    if (!x) throw new Error(`reference forward: ${n.op} ${n.name ?? ''} reads ${n.inputs[0]}, which nothing produced`);
    let y: Activation;
    switch (n.op) {
      case 'Conv': {
        const w = weights.get(n.inputs[1]!)!;
        const [k] = ints(n, 'kernel_shape', [w.dims[2]!]);
        const [stride] = ints(n, 'strides', [1]);
        const [pad] = ints(n, 'pads', [0]);
        y = conv(x, param(n.inputs[1]!), n.inputs[2] ? param(n.inputs[2]) : undefined, w.dims[0]!, k!, stride!, pad!);
        break;
      }
      case 'Relu':
        y = { dims: x.dims, data: x.data.map((v) => (v > 0 ? v : 0)) };
        break;
      case 'Add': {
        const b = values.get(n.inputs[1]!)!;
        y = { dims: x.dims, data: x.data.map((v, j) => v + b.data[j]!) };
        break;
      }
      case 'MaxPool':
        y = maxPool(x, ints(n, 'kernel_shape', [1])[0]!, ints(n, 'strides', [1])[0]!, ints(n, 'pads', [0])[0]!);
        break;
      case 'GlobalAveragePool':
        y = globalAveragePool(x);
        break;
      case 'Flatten':
        y = { dims: [x.data.length], data: x.data };
        break;
      case 'Gemm':
        if (n.attrs?.transB === undefined || !('i' in n.attrs.transB) || n.attrs.transB.i !== 1) {
          throw new Error('reference forward: only Gemm with transB=1 is supported');
        }
        y = gemm(x, param(n.inputs[1]!), n.inputs[2] ? param(n.inputs[2]) : undefined);
        break;
      default:
        throw new Error(`reference forward: unsupported op ${n.op}`);
    }
    const out = n.outputs[0]!;
    values.set(out, y);
    visit(out, y);
    for (const t of n.inputs) if (lastUse.get(t) === i && t !== out) values.delete(t);
  }
}

/**
 * Convolution as a matrix product: the input patches are laid out one output position per
 * row (im2col), so each output is a dot product of two contiguous rows. Four output channels
 * by two positions at a time keep eight sums in registers: ~1.5 GMAC/s in V8.
 */
function conv(x: Activation, w: Float32Array, bias: Float32Array | undefined, cout: number, k: number, stride: number, pad: number): Activation {
  const [cin, h, wd] = x.dims as [number, number, number];
  const oh = Math.floor((h + 2 * pad - k) / stride) + 1;
  const ow = Math.floor((wd + 2 * pad - k) / stride) + 1;
  const positions = oh * ow;
  const depth = cin * k * k;
  // cols[p * depth + (c * k + ky) * k + kx]: the weight layout [cout][cin][k][k] flattened.
  const cols = new Float32Array(positions * depth);
  const src = x.data;
  for (let oy = 0; oy < oh; oy++) {
    for (let ox = 0; ox < ow; ox++) {
      const row = (oy * ow + ox) * depth;
      for (let c = 0; c < cin; c++) {
        for (let ky = 0; ky < k; ky++) {
          const iy = oy * stride + ky - pad;
          const at = row + (c * k + ky) * k;
          if (iy < 0 || iy >= h) continue; // zero padding: cols is zero-filled
          const base = (c * h + iy) * wd;
          for (let kx = 0; kx < k; kx++) {
            const ix = ox * stride + kx - pad;
            if (ix >= 0 && ix < wd) cols[at + kx] = src[base + ix]!;
          }
        }
      }
    }
  }
  const out = new Float32Array(cout * positions);
  let co = 0;
  for (; co + 4 <= cout; co += 4) {
    const w0 = co * depth, w1 = w0 + depth, w2 = w1 + depth, w3 = w2 + depth;
    const b0 = bias?.[co] ?? 0, b1 = bias?.[co + 1] ?? 0, b2 = bias?.[co + 2] ?? 0, b3 = bias?.[co + 3] ?? 0;
    let p = 0;
    for (; p + 2 <= positions; p += 2) {
      const x0 = p * depth, x1 = x0 + depth;
      let a00 = 0, a01 = 0, a10 = 0, a11 = 0, a20 = 0, a21 = 0, a30 = 0, a31 = 0;
      for (let d = 0; d < depth; d++) {
        const u = cols[x0 + d]!, v = cols[x1 + d]!;
        const c0 = w[w0 + d]!, c1 = w[w1 + d]!, c2 = w[w2 + d]!, c3 = w[w3 + d]!;
        a00 += c0 * u; a01 += c0 * v;
        a10 += c1 * u; a11 += c1 * v;
        a20 += c2 * u; a21 += c2 * v;
        a30 += c3 * u; a31 += c3 * v;
      }
      out[co * positions + p] = a00 + b0; out[co * positions + p + 1] = a01 + b0;
      out[(co + 1) * positions + p] = a10 + b1; out[(co + 1) * positions + p + 1] = a11 + b1;
      out[(co + 2) * positions + p] = a20 + b2; out[(co + 2) * positions + p + 1] = a21 + b2;
      out[(co + 3) * positions + p] = a30 + b3; out[(co + 3) * positions + p + 1] = a31 + b3;
    }
    for (; p < positions; p++) for (let j = 0; j < 4; j++) out[(co + j) * positions + p] = dot(w, (co + j) * depth, cols, p * depth, depth) + (bias?.[co + j] ?? 0);
  }
  for (; co < cout; co++) {
    for (let p = 0; p < positions; p++) out[co * positions + p] = dot(w, co * depth, cols, p * depth, depth) + (bias?.[co] ?? 0);
  }
  return { dims: [cout, oh, ow], data: out };
}

function dot(a: Float32Array, ai: number, b: Float32Array, bi: number, n: number): number {
  let s = 0;
  for (let d = 0; d < n; d++) s += a[ai + d]! * b[bi + d]!;
  return s;
}

/** Padding never wins: as in onnxruntime, padded positions are left out of the max. */
function maxPool(x: Activation, k: number, stride: number, pad: number): Activation {
  const [c, h, w] = x.dims as [number, number, number];
  const oh = Math.floor((h + 2 * pad - k) / stride) + 1;
  const ow = Math.floor((w + 2 * pad - k) / stride) + 1;
  const out = new Float32Array(c * oh * ow);
  for (let ch = 0; ch < c; ch++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        let m = -Infinity;
        for (let ky = 0; ky < k; ky++) {
          const iy = oy * stride + ky - pad;
          if (iy < 0 || iy >= h) continue;
          for (let kx = 0; kx < k; kx++) {
            const ix = ox * stride + kx - pad;
            if (ix >= 0 && ix < w) m = Math.max(m, x.data[(ch * h + iy) * w + ix]!);
          }
        }
        out[(ch * oh + oy) * ow + ox] = m;
      }
    }
  }
  return { dims: [c, oh, ow], data: out };
}

function globalAveragePool(x: Activation): Activation {
  const [c, h, w] = x.dims as [number, number, number];
  const plane = h * w;
  const out = new Float32Array(c);
  for (let ch = 0; ch < c; ch++) {
    let s = 0;
    for (let i = 0; i < plane; i++) s += x.data[ch * plane + i]!;
    out[ch] = s / plane;
  }
  return { dims: [c, 1, 1], data: out };
}

/** transB=1, as the synthetic head is written: W is [classes, features]. */
function gemm(x: Activation, w: Float32Array, bias: Float32Array | undefined): Activation {
  const features = x.data.length;
  const classes = w.length / features;
  const out = new Float32Array(classes);
  for (let k = 0; k < classes; k++) out[k] = dot(w, k * features, x.data, 0, features) + (bias?.[k] ?? 0);
  return { dims: [classes], data: out };
}
