/**
 * Models that only tests use. They live in src (not test/) so integration tests that drive the
 * built CLI and worker from dist can generate them too.
 */
import { DEMO_PALETTE } from '../camera/palette.js';
import { encodeModel, floatTensor, int64Tensor, type NodeDef } from './onnx-writer.js';

export interface SlowModelOptions {
  /** Input height = width; default 224. */
  size?: number;
  /** Number of chained [3S,S]x[S,S] MatMuls (67 MFLOP each at S=224); default 500. */
  repeats?: number;
}

/**
 * A model with an image-shaped input ([1,3,S,S] float32 `input` -> [1,K] float32 `output`)
 * whose single run is deliberately slow, so tests can show inference runs off the event loop.
 *
 * Measured with onnxruntime-node 1.30 on a 2-core x86-64 VM (Xeon with AVX-512), defaults
 * (S=224, 500 repeats, 34 GFLOP): ~165 ms per session.run with intraOpNumThreads=1, ~85 ms with
 * 2 threads; session creation ~50 ms. MLAS runs a 224-wide MatMul at ~200 GFLOP/s on that core,
 * hence so many repeats; an AVX2-only or ARM core is several times slower. Time is linear in
 * `repeats` (~0.33 ms each there), so tests needing a different duration can scale it.
 *
 * The constant matrix averages each column with its neighbour (0.5 * (I + shift)): doubly
 * stochastic, so values stay within the input's range however long the chain (no Inf/NaN),
 * and onnxruntime cannot fold it away because the other operand is the runtime input.
 */
export function buildSlowModel(opts: SlowModelOptions = {}): Uint8Array {
  const size = opts.size ?? 224;
  const repeats = opts.repeats ?? 500;
  const K = DEMO_PALETTE.length;

  const mix = new Float32Array(size * size);
  for (let i = 0; i < size; i++) {
    const next = i * size + ((i + 1) % size);
    mix[i * size + i] = 0.5;
    mix[next] = mix[next]! + 0.5; // accumulate so that size 1 still sums to 1
  }
  const head = Array.from({ length: size * K }, (_, j) => Math.sin(j + 1) / size);

  const nodes: NodeDef[] = [{ op: 'Reshape', name: 'flatten', inputs: ['input', 'rows_shape'], outputs: ['m0'] }];
  for (let r = 0; r < repeats; r++) {
    nodes.push({ op: 'MatMul', name: `mix_${r}`, inputs: [`m${r}`, 'mix'], outputs: [`m${r + 1}`] });
  }
  nodes.push(
    { op: 'ReduceMean', name: 'pool', inputs: [`m${repeats}`], outputs: ['pooled'], attrs: { axes: { ints: [0] } } },
    { op: 'MatMul', name: 'head', inputs: ['pooled', 'head'], outputs: ['output'] },
  );

  return encodeModel({
    name: 'edge-classifier-test-slow',
    inputs: [{ name: 'input', type: 'float32', shape: [1, 3, size, size] }],
    outputs: [{ name: 'output', type: 'float32', shape: [1, K] }],
    nodes,
    initializers: [
      int64Tensor('rows_shape', [2], [3 * size, size]),
      { name: 'mix', type: 'float32', dims: [size, size], data: mix },
      floatTensor('head', [size, K], head),
    ],
  });
}

/** A non-image model: float32 `input` [1,10] -> float32 `output` [1,K]; for shape-mismatch errors. */
export function buildVectorModel(): Uint8Array {
  const K = DEMO_PALETTE.length;
  return encodeModel({
    name: 'edge-classifier-test-vector',
    inputs: [{ name: 'input', type: 'float32', shape: [1, 10] }],
    outputs: [{ name: 'output', type: 'float32', shape: [1, K] }],
    nodes: [{ op: 'MatMul', name: 'fc', inputs: ['input', 'W'], outputs: ['output'] }],
    initializers: [floatTensor('W', [10, K], Array.from({ length: 10 * K }, (_, j) => (j % 7) / 7))],
  });
}

/**
 * A model with two image inputs (`input` and `input2`, float32 [1,3,S,S], summed) and one
 * [1,K] `output`; for "the model must have exactly one input" errors.
 */
export function buildTwoInputModel(size = 32): Uint8Array {
  const K = DEMO_PALETTE.length;
  const shape = [1, 3, size, size];
  return encodeModel({
    name: 'edge-classifier-test-two-inputs',
    inputs: [
      { name: 'input', type: 'float32', shape },
      { name: 'input2', type: 'float32', shape },
    ],
    outputs: [{ name: 'output', type: 'float32', shape: [1, K] }],
    nodes: [
      { op: 'Add', name: 'sum', inputs: ['input', 'input2'], outputs: ['sum'] },
      { op: 'ReduceMean', name: 'pool', inputs: ['sum'], outputs: ['pooled'], attrs: { axes: { ints: [2, 3] }, keepdims: { i: 0 } } },
      { op: 'MatMul', name: 'fc', inputs: ['pooled', 'W'], outputs: ['output'] },
    ],
    initializers: [floatTensor('W', [3, K], Array.from({ length: 3 * K }, (_, j) => j / (3 * K)))],
  });
}

export interface SlowWhenBrightOptions {
  /** Rows the slow branch works on for a bright frame (a dark one: 1); default 50 000. */
  rows?: number;
  /** Chained [rows,256]x[256,256] MatMuls; default 2 000. */
  repeats?: number;
}

/**
 * A model that wedges the worker on demand: [1,3,224,224] float32 `input` -> [1,K] `output`,
 * fast on dark frames (mean of the normalized input <= 0, e.g. red, green, blue, black, and the
 * all-zero warm-up) and practically endless on bright ones (white): a frame's mean picks the
 * row count of a MatMul chain, like `failWhenBright` picks a bad reshape in the demo model.
 *
 * Defaults: a bright frame costs rows x repeats x 131 kFLOP = 13 TFLOP, over a minute on a
 * 2-core x86-64 VM at ~200 GFLOP/s per core (see buildSlowModel), with ~50 MB per intermediate;
 * a dark one ~0.3 GFLOP. The output is the mean colour times a fixed matrix plus 0 x the
 * chain's mean, so the chain cannot be dropped as dead code and the values stay finite (the
 * mixing matrix is doubly stochastic).
 */
export function buildSlowWhenBrightModel(opts: SlowWhenBrightOptions = {}): Uint8Array {
  const size = 224;
  const width = 256;
  const rows = opts.rows ?? 50_000;
  const repeats = opts.repeats ?? 2_000;
  const K = DEMO_PALETTE.length;

  const mix = new Float32Array(width * width);
  for (let i = 0; i < width; i++) {
    mix[i * width + i] = 0.5;
    mix[i * width + ((i + 1) % width)] = 0.5;
  }
  const nodes: NodeDef[] = [
    { op: 'ReduceMean', name: 'colour', inputs: ['input'], outputs: ['colour'], attrs: { axes: { ints: [2, 3] }, keepdims: { i: 0 } } },
    { op: 'MatMul', name: 'logits', inputs: ['colour', 'W'], outputs: ['logits'] },
    // rows = [1, rows][mean(input) > 0]
    { op: 'ReduceMean', name: 'mean', inputs: ['input'], outputs: ['mean'], attrs: { keepdims: { i: 0 } } },
    { op: 'Greater', name: 'bright', inputs: ['mean', 'zero'], outputs: ['bright'] },
    { op: 'Cast', name: 'bright_index', inputs: ['bright'], outputs: ['bright_index'], attrs: { to: { i: 7 } } },
    { op: 'Gather', name: 'shape', inputs: ['shapes', 'bright_index'], outputs: ['shape'], attrs: { axis: { i: 0 } } },
    { op: 'ReduceMean', name: 'row', inputs: ['input'], outputs: ['row'], attrs: { axes: { ints: [1, 2] }, keepdims: { i: 0 } } },
    { op: 'Expand', name: 'rows', inputs: ['row', 'shape'], outputs: ['rows'] },
    { op: 'MatMul', name: 'widen', inputs: ['rows', 'widen'], outputs: ['m0'] },
  ];
  for (let r = 0; r < repeats; r++) nodes.push({ op: 'MatMul', name: `mix_${r}`, inputs: [`m${r}`, 'mix'], outputs: [`m${r + 1}`] });
  nodes.push(
    { op: 'ReduceMean', name: 'chain_mean', inputs: [`m${repeats}`], outputs: ['chain_mean'], attrs: { keepdims: { i: 0 } } },
    { op: 'Mul', name: 'nothing', inputs: ['chain_mean', 'zero'], outputs: ['nothing'] },
    { op: 'Add', name: 'output', inputs: ['logits', 'nothing'], outputs: ['output'] },
  );
  return encodeModel({
    name: 'edge-classifier-test-slow-when-bright',
    inputs: [{ name: 'input', type: 'float32', shape: [1, 3, size, size] }],
    outputs: [{ name: 'output', type: 'float32', shape: [1, K] }],
    nodes,
    initializers: [
      floatTensor('W', [3, K], Array.from({ length: 3 * K }, (_, j) => Math.cos(j + 1))),
      floatTensor('zero', [], [0]),
      int64Tensor('shapes', [2, 2], [1, size, rows, size]),
      floatTensor('widen', [size, width], Array.from({ length: size * width }, (_, j) => ((j % 7) + 1) / (7 * size))),
      { name: 'mix', type: 'float32', dims: [width, width], data: mix },
    ],
  });
}

export interface MemoryHogOptions {
  /** float32 elements of the tensor one run materialises; default 2^28 (1 GiB). */
  elements?: number;
}

/**
 * A classifier that needs far more memory to run than to load: [1,3,224,224] float32 `input`
 * -> [1,K] `output`, like buildSlowWhenBrightModel, plus 0 x the mean of a tensor of
 * `elements` floats that every run expands from the input (Expand to [elements], filled, so
 * the pages are really touched). The model file is ~1 KB and the session loads in
 * milliseconds; the first run (the validator's warm-up) allocates 4 x `elements` bytes. Under
 * a memory limit below that, the process running it is OOM-killed: the "release too big for
 * the device" case.
 */
export function buildMemoryHogModel(opts: MemoryHogOptions = {}): Uint8Array {
  const size = 224;
  const elements = opts.elements ?? 2 ** 28;
  const K = DEMO_PALETTE.length;
  return encodeModel({
    name: 'edge-classifier-test-memory-hog',
    inputs: [{ name: 'input', type: 'float32', shape: [1, 3, size, size] }],
    outputs: [{ name: 'output', type: 'float32', shape: [1, K] }],
    nodes: [
      { op: 'ReduceMean', name: 'colour', inputs: ['input'], outputs: ['colour'], attrs: { axes: { ints: [2, 3] }, keepdims: { i: 0 } } },
      { op: 'MatMul', name: 'logits', inputs: ['colour', 'W'], outputs: ['logits'] },
      { op: 'ReduceMean', name: 'mean', inputs: ['input'], outputs: ['mean'], attrs: { keepdims: { i: 0 } } },
      { op: 'Expand', name: 'huge', inputs: ['mean', 'huge_shape'], outputs: ['huge'] },
      { op: 'ReduceMean', name: 'huge_mean', inputs: ['huge'], outputs: ['huge_mean'], attrs: { keepdims: { i: 0 } } },
      { op: 'Mul', name: 'nothing', inputs: ['huge_mean', 'zero'], outputs: ['nothing'] },
      { op: 'Add', name: 'output', inputs: ['logits', 'nothing'], outputs: ['output'] },
    ],
    initializers: [
      floatTensor('W', [3, K], Array.from({ length: 3 * K }, (_, j) => Math.cos(j + 1))),
      floatTensor('zero', [], [0]),
      int64Tensor('huge_shape', [1], [elements]),
    ],
  });
}

export interface NonFiniteModelOptions {
  /** What a bad run outputs: +Infinity (default) or NaN in every class. */
  value?: 'inf' | 'nan';
  /**
   * 'always' (default): every run. 'bright': only frames whose normalized mean is above 0
   * (white; not red, green, blue, black or the all-zero warm-up), so it passes validation on
   * dark images and fails on live frames, like the demo model's failWhenBright.
   */
  when?: 'always' | 'bright';
}

/**
 * A classifier ([1,3,224,224] float32 `input` -> [1,K] `output`: the mean colour times a
 * fixed matrix) whose output is non-finite on demand: logits + (1 / d - 1) x s, where d is 0
 * for a bad frame and 1 otherwise, and s is 1 ('inf': 1/0 - 1 = Inf) or 0 ('nan': Inf x 0 =
 * NaN). Good frames get the logits unchanged (+ 0).
 */
export function buildNonFiniteModel(opts: NonFiniteModelOptions = {}): Uint8Array {
  const size = 224;
  const K = DEMO_PALETTE.length;
  const threshold = opts.when === 'bright' ? 0 : -1e30;
  return encodeModel({
    name: 'edge-classifier-test-non-finite',
    inputs: [{ name: 'input', type: 'float32', shape: [1, 3, size, size] }],
    outputs: [{ name: 'output', type: 'float32', shape: [1, K] }],
    nodes: [
      { op: 'ReduceMean', name: 'colour', inputs: ['input'], outputs: ['colour'], attrs: { axes: { ints: [2, 3] }, keepdims: { i: 0 } } },
      { op: 'MatMul', name: 'logits', inputs: ['colour', 'W'], outputs: ['logits'] },
      { op: 'ReduceMean', name: 'mean', inputs: ['input'], outputs: ['mean'], attrs: { keepdims: { i: 0 } } },
      { op: 'Greater', name: 'bad', inputs: ['mean', 'threshold'], outputs: ['bad'] },
      { op: 'Cast', name: 'bad_f', inputs: ['bad'], outputs: ['bad_f'], attrs: { to: { i: 1 } } },
      { op: 'Sub', name: 'denominator', inputs: ['one', 'bad_f'], outputs: ['denominator'] },
      { op: 'Div', name: 'blowup', inputs: ['one', 'denominator'], outputs: ['blowup'] },
      { op: 'Sub', name: 'excess', inputs: ['blowup', 'one'], outputs: ['excess'] },
      { op: 'Mul', name: 'scaled', inputs: ['excess', 'scale'], outputs: ['scaled'] },
      { op: 'Add', name: 'output', inputs: ['logits', 'scaled'], outputs: ['output'] },
    ],
    initializers: [
      floatTensor('W', [3, K], Array.from({ length: 3 * K }, (_, j) => Math.cos(j + 1))),
      floatTensor('threshold', [], [threshold]),
      floatTensor('one', [], [1]),
      floatTensor('scale', [], [opts.value === 'nan' ? 0 : 1]),
    ],
  });
}
