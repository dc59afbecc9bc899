import { describe, it, expect } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { buildDemoModel, demoLabels, writeDemoModel, type DemoModelOptions } from '../../src/modelgen/demo-model.js';
import { encodeModel, int64Tensor, type ModelDef } from '../../src/modelgen/onnx-writer.js';
import { DEMO_PALETTE } from '../../src/camera/palette.js';
import { buildSlowModel, buildTwoInputModel, buildVectorModel } from '../../src/modelgen/test-models.js';
import {
  float16BitsToFloat32,
  float32ToFloat16Bits,
  fromFloat16Array,
  toFloat16Array,
} from '../../src/vision/float16.js';

const K = DEMO_PALETTE.length;
type Rgb = readonly [number, number, number];

// Spelled out here rather than imported, so the test checks the model against the preset itself.
const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];

function imageTensor(colours: Rgb[], size: number, layout: 'nchw' | 'nhwc', dtype: 'float32' | 'float16'): ort.Tensor {
  const B = colours.length;
  const plane = size * size;
  const data = new Float32Array(B * 3 * plane);
  colours.forEach((rgb, b) => {
    for (let c = 0; c < 3; c++) {
      const v = (rgb[c]! / 255 - MEAN[c]!) / STD[c]!;
      for (let p = 0; p < plane; p++) data[layout === 'nchw' ? (b * 3 + c) * plane + p : (b * plane + p) * 3 + c] = v;
    }
  });
  const dims = layout === 'nchw' ? [B, 3, size, size] : [B, size, size, 3];
  return dtype === 'float16' ? new ort.Tensor('float16', toFloat16Array(data), dims) : new ort.Tensor('float32', data, dims);
}

function values(t: ort.Tensor): Float32Array {
  if (t.type === 'float16') return fromFloat16Array(t.data as Uint16Array);
  return Float32Array.from(t.data as ArrayLike<number>);
}

function argmax(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}

async function run(model: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<ort.Tensor> {
  const session = await ort.InferenceSession.create(model);
  try {
    const out = await session.run(feeds);
    const first = out[session.outputNames[0]!];
    if (!first) throw new Error('no output');
    return first;
  } finally {
    await session.release();
  }
}

describe('demo model', () => {
  const size = 16;
  const variants: DemoModelOptions[] = [];
  for (const layout of ['nchw', 'nhwc'] as const)
    for (const dtype of ['float32', 'float16'] as const)
      for (const output of ['logits', 'probabilities'] as const) variants.push({ size, layout, dtype, output });

  for (const opts of variants) {
    it(`classifies each pure palette colour (${opts.layout}, ${opts.dtype}, ${opts.output})`, async () => {
      const session = await ort.InferenceSession.create(buildDemoModel(opts));
      try {
        for (const [k, colour] of DEMO_PALETTE.entries()) {
          const out = await session.run({ input: imageTensor([colour.rgb], size, opts.layout!, opts.dtype!) });
          const y = values(out.output!);
          expect(out.output!.type).toBe(opts.dtype);
          expect(out.output!.dims).toEqual([1, K]);
          expect(argmax(y), colour.name).toBe(k);
          const sum = y.reduce((a, v) => a + v, 0);
          if (opts.output === 'probabilities') {
            expect(sum).toBeCloseTo(1, 2);
            expect(y[k]).toBeGreaterThan(0.95); // confident on a pure colour
          } else {
            expect(Math.abs(sum - 1)).toBeGreaterThan(0.1);
          }
        }
      } finally {
        await session.release();
      }
    });
  }

  it('the default 224 model classifies a mid-palette colour', async () => {
    const green = DEMO_PALETTE[3]!;
    const out = await run(buildDemoModel(), { input: imageTensor([green.rgb], 224, 'nchw', 'float32') });
    expect(argmax(values(out))).toBe(3);
  });

  it('a slightly off colour still maps to the nearest palette entry', async () => {
    const out = await run(buildDemoModel({ size, output: 'probabilities' }), {
      input: imageTensor([[60, 80, 190]], size, 'nchw', 'float32'),
    });
    expect(DEMO_PALETTE[argmax(values(out))]!.name).toBe('blue');
  });

  for (const layout of ['nchw', 'nhwc'] as const) {
    it(`dynamic batch gives one correct row per image (${layout})`, async () => {
      const model = buildDemoModel({ size, layout, batch: 'dynamic', output: 'probabilities' });
      const picks = [4, 0, 6];
      const out = await run(model, { input: imageTensor(picks.map((k) => DEMO_PALETTE[k]!.rgb), size, layout, 'float32') });
      expect(out.dims).toEqual([3, K]);
      const y = values(out);
      picks.forEach((k, row) => expect(argmax(y.subarray(row * K, (row + 1) * K))).toBe(k));
    });
  }

  it('outputRank4 yields [B,K,1,1], also with dynamic batch and float16', async () => {
    const red = DEMO_PALETTE[0]!.rgb;
    const yellow = DEMO_PALETTE[2]!.rgb;
    const fixed = await run(buildDemoModel({ size, outputRank4: true }), { input: imageTensor([red], size, 'nchw', 'float32') });
    expect(fixed.dims).toEqual([1, K, 1, 1]);
    expect(argmax(values(fixed))).toBe(0);
    const dyn = await run(buildDemoModel({ size, outputRank4: true, batch: 'dynamic', dtype: 'float16' }), {
      input: imageTensor([red, yellow], size, 'nchw', 'float16'),
    });
    expect(dyn.dims).toEqual([2, K, 1, 1]);
    expect(argmax(values(dyn).subarray(K))).toBe(2);
  });

  it('reports the expected input/output metadata', async () => {
    const cases: [DemoModelOptions, (number | string)[], (number | string)[]][] = [
      [{}, [1, 3, 224, 224], [1, K]],
      [{ size: 32, layout: 'nhwc', batch: 'dynamic', dtype: 'float16' }, ['batch_size', 32, 32, 3], ['batch_size', K]],
      [{ size: 8, outputRank4: true, inputName: 'data', outputName: 'prob' }, [1, 3, 8, 8], [1, K, 1, 1]],
    ];
    for (const [opts, inShape, outShape] of cases) {
      const session = await ort.InferenceSession.create(buildDemoModel(opts));
      expect(session.inputMetadata).toEqual([
        { name: opts.inputName ?? 'input', isTensor: true, type: opts.dtype ?? 'float32', shape: inShape },
      ]);
      expect(session.outputMetadata).toEqual([
        { name: opts.outputName ?? 'output', isTensor: true, type: opts.dtype ?? 'float32', shape: outShape },
      ]);
      await session.release();
    }
  });

  it('writes the model and its labels', async () => {
    expect(demoLabels()).toBe(DEMO_PALETTE.map((c) => `${c.name}\n`).join(''));
    const dir = await mkdtemp(join(tmpdir(), 'modelgen-'));
    try {
      const { modelPath, labelsPath } = await writeDemoModel(join(dir, 'nested', 'models'));
      expect(modelPath.endsWith('colors.onnx')).toBe(true);
      expect(await readFile(labelsPath, 'utf8')).toBe(demoLabels());
      const session = await ort.InferenceSession.create(modelPath);
      expect(session.inputNames).toEqual(['input']);
      await session.release();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('float16 helpers', () => {
  it('convert known values', () => {
    const known: [number, number][] = [
      [1, 0x3c00],
      [0.5, 0x3800],
      [-2, 0xc000],
      [0, 0x0000],
      [-0, 0x8000],
      [65504, 0x7bff],
      [65520, 0x7c00], // halfway to the next binade rounds up to Infinity
      [6e-8, 0x0001], // nearest subnormal is 2^-24
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -25, 0x0000], // exactly halfway to 2^-24: ties to even (zero)
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [1 + 2 ** -11, 0x3c00], // tie rounds to even mantissa
      [1 + 3 * 2 ** -11, 0x3c02],
    ];
    for (const [v, bits] of known) expect(float32ToFloat16Bits(v), `${v}`).toBe(bits);
    expect(float16BitsToFloat32(0x3c00)).toBe(1);
    expect(float16BitsToFloat32(0x7bff)).toBe(65504);
    expect(float16BitsToFloat32(0x0001)).toBe(2 ** -24);
    expect(float16BitsToFloat32(0x7c00)).toBe(Infinity);
    expect(Number.isNaN(float16BitsToFloat32(float32ToFloat16Bits(NaN)))).toBe(true);
  });

  it('round-trip every non-NaN float16 exactly', () => {
    for (let b = 0; b < 0x10000; b++) {
      const v = float16BitsToFloat32(b);
      if (!Number.isNaN(v) && float32ToFloat16Bits(v) !== b) throw new Error(`0x${b.toString(16)} -> ${v}`);
    }
  });

  it("agree with onnxruntime's Cast(float -> float16)", async () => {
    const xs = new Float32Array(4096).map((_, i) => Math.sin(i * 12.9898) * 2 ** ((i % 60) - 30));
    const model = encodeModel({
      name: 'cast',
      inputs: [{ name: 'x', type: 'float32', shape: [xs.length] }],
      outputs: [{ name: 'y', type: 'float16', shape: [xs.length] }],
      nodes: [{ op: 'Cast', inputs: ['x'], outputs: ['y'], attrs: { to: { i: 10 } } }],
      initializers: [],
    });
    const out = await run(model, { x: new ort.Tensor('float32', xs, [xs.length]) });
    expect(Array.from(out.data as Uint16Array)).toEqual(Array.from(toFloat16Array(xs)));
  });
});

describe('onnx writer', () => {
  it('encodes every attribute kind and tensor type', async () => {
    const def: ModelDef = {
      name: 'attrs',
      inputs: [{ name: 'x', type: 'float32', shape: [1, 2] }],
      outputs: [
        { name: 'f', type: 'float32', shape: [] },
        { name: 'fs', type: 'float32', shape: [3] },
        { name: 'i', type: 'int64', shape: [] },
        { name: 'is', type: 'int64', shape: [4] },
        { name: 'u8', type: 'uint8', shape: [2] },
        { name: 'i8', type: 'int8', shape: [2] },
        { name: 'i32', type: 'int32', shape: [2] },
        { name: 'h', type: 'float16', shape: [2] },
        { name: 'padded', type: 'float32', shape: [1, 4] },
      ],
      nodes: [
        { op: 'Constant', inputs: [], outputs: ['f'], attrs: { value_float: { f: 0.25 } } },
        { op: 'Constant', inputs: [], outputs: ['fs'], attrs: { value_floats: { floats: [1.5, -2, 3e5] } } },
        { op: 'Constant', inputs: [], outputs: ['i'], attrs: { value_int: { i: -7 } } },
        { op: 'Constant', inputs: [], outputs: ['is'], attrs: { value_ints: { ints: [0, -1, 2 ** 40, 300] } } },
        { op: 'Constant', inputs: [], outputs: ['u8'], attrs: { value: { t: { name: 'u8', type: 'uint8', dims: [2], data: Uint8Array.of(0, 255) } } } },
        { op: 'Constant', inputs: [], outputs: ['i8'], attrs: { value: { t: { name: 'i8', type: 'int8', dims: [2], data: Int8Array.of(-128, 5) } } } },
        { op: 'Constant', inputs: [], outputs: ['i32'], attrs: { value: { t: { name: 'i32', type: 'int32', dims: [2], data: Int32Array.of(-70000, 1 << 30) } } } },
        { op: 'Constant', inputs: [], outputs: ['h'], attrs: { value: { t: { name: 'h', type: 'float16', dims: [2], data: toFloat16Array([0.5, -3]) } } } },
        { op: 'Pad', inputs: ['x', 'pads'], outputs: ['padded'], attrs: { mode: { s: 'edge' } } },
      ],
      initializers: [int64Tensor('pads', [4], [0, 1, 0, 1])],
    };
    const session = await ort.InferenceSession.create(encodeModel(def));
    const out = await session.run({ x: new ort.Tensor('float32', Float32Array.of(4, 9), [1, 2]) });
    await session.release();
    const get = (n: string): unknown[] => Array.from(out[n]!.data as ArrayLike<unknown>);
    expect(get('f')).toEqual([0.25]);
    expect(get('fs')).toEqual([1.5, -2, 3e5]);
    expect(get('i')).toEqual([-7n]);
    expect(get('is')).toEqual([0n, -1n, 2n ** 40n, 300n]);
    expect(get('u8')).toEqual([0, 255]);
    expect(get('i8')).toEqual([-128, 5]);
    expect(get('i32')).toEqual([-70000, 1 << 30]);
    expect(fromFloat16Array(out.h!.data as Uint16Array)).toEqual(Float32Array.of(0.5, -3));
    expect(get('padded')).toEqual([4, 4, 9, 9]);
  });

  it('rejects tensors whose data does not match type or dims', () => {
    const base: ModelDef = { name: 'bad', inputs: [], outputs: [], nodes: [], initializers: [] };
    const bad = (t: ModelDef['initializers'][number]) => () => encodeModel({ ...base, initializers: [t] });
    expect(bad({ name: 'a', type: 'float32', dims: [2], data: new Int32Array(2) })).toThrow(/Float32Array/);
    expect(bad({ name: 'b', type: 'int64', dims: [2, 2], data: new BigInt64Array(3) })).toThrow(/4 values/);
  });
});

describe('test models', () => {
  it('the slow model runs and produces finite output', async () => {
    const session = await ort.InferenceSession.create(buildSlowModel(), { intraOpNumThreads: 1 });
    try {
      const input = new ort.Tensor('float32', new Float32Array(3 * 224 * 224).map((_, i) => (i % 255) / 64 - 2), [1, 3, 224, 224]);
      const started = performance.now();
      const out = await session.run({ input });
      const ms = performance.now() - started;
      expect(out.output!.dims).toEqual([1, K]);
      expect(values(out.output!).every(Number.isFinite)).toBe(true);
      expect(ms).toBeGreaterThan(20); // it must be slow enough to matter
    } finally {
      await session.release();
    }
  });

  it('the vector and two-input models load with the advertised signatures', async () => {
    const vector = await ort.InferenceSession.create(buildVectorModel());
    expect(vector.inputMetadata).toEqual([{ name: 'input', isTensor: true, type: 'float32', shape: [1, 10] }]);
    const out = await vector.run({ input: new ort.Tensor('float32', new Float32Array(10).fill(1), [1, 10]) });
    expect(out.output!.dims).toEqual([1, K]);
    await vector.release();

    const two = await ort.InferenceSession.create(buildTwoInputModel());
    expect(two.inputNames).toEqual(['input', 'input2']);
    expect(two.outputMetadata).toEqual([{ name: 'output', isTensor: true, type: 'float32', shape: [1, K] }]);
    await two.release();
  });
});
