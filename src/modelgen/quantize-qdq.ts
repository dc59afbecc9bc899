/**
 * Static int8 quantization of an fp32 ModelDef into QDQ format (QuantizeLinear/DequantizeLinear
 * pairs around float ops), the portable format onnxruntime fuses into integer kernels
 * (QLinearConv, QLinearAdd, ...) at session creation.
 *
 * - Weights: per-output-channel symmetric int8 (zero point 0, as QLinearConv requires for
 *   per-channel weights), DequantizeLinear axis=0. Biases: int32 with scale x_scale*w_scale[c],
 *   the form onnxruntime's Conv/Gemm selectors expect (a float bias would stop the fusion).
 * - Activations: asymmetric uint8 (default) or int8 from calibrated [min, max] ranges. uint8 is
 *   what the x86 CPU EP fuses completely (U8S8 kernels): measured with onnxruntime-node 1.30 on
 *   the 2-core dev VM, uint8 gives 53 QLinearConv + 16 QLinearAdd and ~9 ms/frame; int8
 *   activations leave 20 Convs and all 16 Adds in float (~26 ms). Every tensor a
 *   Conv/Add/MaxPool/GlobalAveragePool/Flatten/Gemm reads gets Q -> DQ. A Relu's input is left
 *   float and its output quantized with the zero point at the type's minimum: onnxruntime's
 *   ReluQuantFusion then drops the Relu (the Q's clamp at zero does its work), so Conv+Relu and
 *   Add+Relu become single QLinearConv/QLinearAdd nodes.
 * - MaxPool and Flatten outputs reuse their input's scale and zero point: only then does
 *   onnxruntime drop their Q/DQ and run them directly on the 8-bit tensor.
 * - Each consumer gets its own DequantizeLinear (a shared one would make node groups overlap).
 * - The graph output (the Gemm's logits) stays float: QGemm can write float directly.
 */
import type { ModelDef, NodeDef, TensorDef } from './onnx-writer.js';

export type ActivationType = 'uint8' | 'int8';

export interface Range {
  min: number;
  max: number;
}

/** Ops whose data inputs are read quantized. */
const QUANTIZED_OPS = new Set(['Conv', 'Add', 'MaxPool', 'GlobalAveragePool', 'Flatten', 'Gemm']);
/** Ops that only move values around: their output shares the input's quantization. */
const SHARES_INPUT_QPARAMS = new Set(['MaxPool', 'Flatten']);
/** Ops with [x, W, bias] inputs whose W and bias are quantized per output channel. */
const WEIGHTED_OPS = new Set(['Conv', 'Gemm']);

interface QParams {
  scale: number;
  zeroPoint: number;
}

/**
 * The activation tensors that need a calibrated range: those a quantized op reads, except
 * outputs of ops that share their input's parameters (those follow from their input's range).
 */
export function calibrationTensors(model: ModelDef): string[] {
  const initializers = new Set(model.initializers.map((t) => t.name));
  const producer = new Map(model.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  const out = new Set<string>();
  for (const n of model.nodes) {
    if (!QUANTIZED_OPS.has(n.op)) continue;
    const data = WEIGHTED_OPS.has(n.op) ? n.inputs.slice(0, 1) : n.inputs;
    for (let t of data) {
      if (initializers.has(t)) continue;
      // Walk back through MaxPool/Flatten to the tensor whose range decides.
      for (let p = producer.get(t); p && SHARES_INPUT_QPARAMS.has(p.op); p = producer.get(t)) t = p.inputs[0]!;
      out.add(t);
    }
  }
  return [...out];
}

function activationQParams(range: Range, type: ActivationType): QParams {
  // The range must contain 0 so that 0 (padding, ReLU's floor) is exact.
  const min = Math.min(0, range.min);
  const max = Math.max(0, range.max);
  const qmin = type === 'uint8' ? 0 : -128;
  const scale = Math.fround(max > min ? (max - min) / 255 : 1);
  const zeroPoint = Math.min(qmin + 255, Math.max(qmin, qmin + Math.round(-min / scale)));
  return { scale, zeroPoint };
}

/** Per-output-channel symmetric int8: W [C, ...] -> int8 values and C scales. */
function quantizeWeight(w: TensorDef): { q: Int8Array; scales: Float32Array } {
  const data = w.data as Float32Array;
  const channels = w.dims[0]!;
  const per = data.length / channels;
  const q = new Int8Array(data.length);
  const scales = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    const base = c * per;
    let maxAbs = 0;
    for (let i = 0; i < per; i++) maxAbs = Math.max(maxAbs, Math.abs(data[base + i]!));
    // [-127, 127]: symmetric (no -128), so negating a weight never overflows.
    const s = Math.fround(maxAbs > 0 ? maxAbs / 127 : 1);
    scales[c] = s;
    for (let i = 0; i < per; i++) q[base + i] = Math.max(-127, Math.min(127, Math.round(data[base + i]! / s)));
  }
  return { q, scales };
}

/**
 * The QDQ model. `ranges` holds a calibrated range for every name calibrationTensors() lists.
 * The input model is not modified.
 */
export function quantizeQdq(model: ModelDef, ranges: ReadonlyMap<string, Range>, activations: ActivationType = 'uint8'): ModelDef {
  const floats = new Map(model.initializers.map((t) => [t.name, t]));
  const producer = new Map(model.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  const initializers: TensorDef[] = [];
  const nodes: NodeDef[] = [];
  const qparams = new Map<string, QParams>();
  const zpArray = (v: number, n = 1): Uint8Array | Int8Array =>
    activations === 'uint8' ? new Uint8Array(n).fill(v) : new Int8Array(n).fill(v);

  const paramsOf = (t: string): QParams => {
    let p = qparams.get(t);
    if (p) return p;
    const src = producer.get(t);
    if (src && SHARES_INPUT_QPARAMS.has(src.op)) {
      p = paramsOf(src.inputs[0]!);
    } else {
      const range = ranges.get(t);
      if (!range) throw new Error(`no calibrated range for ${t}`);
      p = activationQParams(range, activations);
    }
    qparams.set(t, p);
    return p;
  };

  /** QuantizeLinear right after a tensor is produced; its scale/zp initializers are shared by its DQs. */
  const quantize = (t: string): void => {
    const { scale, zeroPoint } = paramsOf(t);
    initializers.push(
      { name: `${t}.scale`, type: 'float32', dims: [], data: new Float32Array([scale]) },
      { name: `${t}.zero_point`, type: activations, dims: [], data: zpArray(zeroPoint) },
    );
    nodes.push({ op: 'QuantizeLinear', name: `${t}.quantize`, inputs: [t, `${t}.scale`, `${t}.zero_point`], outputs: [`${t}.q`] });
  };

  let dqCount = 0;
  const dequantize = (t: string): string => {
    const out = `${t}.dq${dqCount++}`;
    nodes.push({ op: 'DequantizeLinear', name: out, inputs: [`${t}.q`, `${t}.scale`, `${t}.zero_point`], outputs: [out] });
    return out;
  };

  /** int8 W and int32 bias, each behind its own DequantizeLinear (axis 0 = output channel). */
  const quantizeParams = (n: NodeDef, xScale: number): string[] => {
    const [, wName, bName] = n.inputs;
    const w = floats.get(wName!);
    if (!w) throw new Error(`${n.name ?? n.op}: weight ${wName} is not an initializer`);
    const { q, scales } = quantizeWeight(w);
    const channels = scales.length;
    initializers.push(
      { name: `${wName}.int8`, type: 'int8', dims: w.dims, data: q },
      { name: `${wName}.scale`, type: 'float32', dims: [channels], data: scales },
      { name: `${wName}.zero_point`, type: 'int8', dims: [channels], data: new Int8Array(channels) },
    );
    nodes.push({
      op: 'DequantizeLinear',
      name: `${wName}.dq`,
      inputs: [`${wName}.int8`, `${wName}.scale`, `${wName}.zero_point`],
      outputs: [`${wName}.dq`],
      attrs: { axis: { i: 0 } },
    });
    const inputs = [`${wName}.dq`];
    const b = bName === undefined ? undefined : floats.get(bName);
    if (b) {
      const bias = b.data as Float32Array;
      const bScales = scales.map((s) => Math.fround(s * xScale));
      const bq = Int32Array.from(bias, (v, c) => Math.round(v / bScales[c]!));
      initializers.push(
        { name: `${bName}.int32`, type: 'int32', dims: b.dims, data: bq },
        { name: `${bName}.scale`, type: 'float32', dims: [channels], data: bScales },
      );
      nodes.push({
        op: 'DequantizeLinear',
        name: `${bName}.dq`,
        inputs: [`${bName}.int32`, `${bName}.scale`],
        outputs: [`${bName}.dq`],
        attrs: { axis: { i: 0 } },
      });
      inputs.push(`${bName}.dq`);
    }
    return inputs;
  };

  // Which tensors get a Q: everything a quantized op reads that is not a parameter.
  const quantized = new Set<string>();
  for (const n of model.nodes) {
    if (!QUANTIZED_OPS.has(n.op)) continue;
    const data = WEIGHTED_OPS.has(n.op) ? n.inputs.slice(0, 1) : n.inputs;
    for (const t of data) if (!floats.has(t)) quantized.add(t);
  }

  for (const input of model.inputs) if (quantized.has(input.name)) quantize(input.name);
  for (const n of model.nodes) {
    let inputs = n.inputs;
    if (QUANTIZED_OPS.has(n.op)) {
      if (WEIGHTED_OPS.has(n.op)) {
        const x = n.inputs[0]!;
        inputs = [dequantize(x), ...quantizeParams(n, paramsOf(x).scale)];
      } else {
        inputs = n.inputs.map((t) => (floats.has(t) ? t : dequantize(t)));
      }
    }
    nodes.push({ ...n, inputs });
    for (const o of n.outputs) if (quantized.has(o)) quantize(o);
  }

  // Parameters not consumed by a quantized op (none in ResNet50) stay float.
  const replaced = new Set(model.nodes.filter((n) => WEIGHTED_OPS.has(n.op)).flatMap((n) => n.inputs.slice(1)));
  for (const t of model.initializers) if (!replaced.has(t.name)) initializers.push(t);
  return { ...model, name: `${model.name}-qdq-${activations}`, nodes, initializers };
}
