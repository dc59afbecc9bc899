import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { encodeModel, type ModelDef, type NodeDef, type TensorDef } from '../../src/modelgen/onnx-writer.js';
import { runReference, type Activation } from '../../src/modelgen/reference-forward.js';

// `model synth` calibrates with the TypeScript forward pass instead of onnxruntime (whose last
// bits differ between CPUs). It must compute the same network: checked here against
// onnxruntime on a small graph that uses every op and attribute the ResNet50 does (7x7/2 and
// 3x3/2 convs with padding, 1x1 convs, a padded MaxPool, Add, GlobalAveragePool, Flatten, Gemm
// with transB), at odd sizes and channel counts that exercise the kernels' remainder loops.

function rand(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}

function buildModel(size: number): ModelDef {
  const r = rand(7);
  const initializers: TensorDef[] = [];
  const param = (name: string, dims: number[], scale: number): string => {
    const n = dims.reduce((a, b) => a * b, 1);
    initializers.push({ name, type: 'float32', dims, data: Float32Array.from({ length: n }, () => r() * scale) });
    return name;
  };
  const nodes: NodeDef[] = [];
  const conv = (x: string, out: string, cin: number, cout: number, k: number, stride: number): string => {
    const pad = (k - 1) / 2;
    const w = param(`${out}.w`, [cout, cin, k, k], 2 / Math.sqrt(cin * k * k));
    const b = param(`${out}.b`, [cout], 0.2);
    nodes.push({ op: 'Conv', name: out, inputs: [x, w, b], outputs: [out], attrs: { kernel_shape: { ints: [k, k] }, strides: { ints: [stride, stride] }, pads: { ints: [pad, pad, pad, pad] } } });
    return out;
  };
  const op = (type: string, inputs: string[], out: string, attrs?: NodeDef['attrs']): string => {
    nodes.push({ op: type, name: out, inputs, outputs: [out], ...(attrs ? { attrs } : {}) });
    return out;
  };
  let x = op('Relu', [conv('input', 'c1', 3, 6, 7, 2)], 'r1');
  x = op('MaxPool', [x], 'pool', { kernel_shape: { ints: [3, 3] }, strides: { ints: [2, 2] }, pads: { ints: [1, 1, 1, 1] } });
  const branch = op('Relu', [conv(op('Relu', [conv(x, 'c2', 6, 5, 1, 1)], 'r2'), 'c3', 5, 9, 3, 2)], 'r3');
  const shortcut = conv(x, 'down', 6, 9, 1, 2);
  x = op('Relu', [op('Add', [branch, shortcut], 'add')], 'r4');
  x = op('Flatten', [op('GlobalAveragePool', [x], 'gap')], 'flat', { axis: { i: 1 } });
  const w = param('fc.w', [7, 9], 0.5);
  const b = param('fc.b', [7], 0.1);
  op('Gemm', [x, w, b], 'output', { transB: { i: 1 } });
  return {
    name: 'reference-forward-check',
    inputs: [{ name: 'input', type: 'float32', shape: [1, 3, size, size] }],
    outputs: [{ name: 'output', type: 'float32', shape: [1, 7] }],
    nodes,
    initializers,
    opset: 13,
  };
}

describe('reference forward pass (model synth calibration)', () => {
  for (const size of [33, 40]) {
    it(`computes what onnxruntime computes (${size}x${size} input)`, async () => {
      const model = buildModel(size);
      const r = rand(size);
      const input = Float32Array.from({ length: 3 * size * size }, () => r() * 4);
      const seen: string[] = [];
      let ours: Activation | undefined;
      await runReference(model, { dims: [3, size, size], data: input }, (name, value) => {
        seen.push(name);
        if (name === 'output') ours = value;
      });
      // Every tensor is reported, in execution order, the input first.
      expect(seen).toEqual(['input', ...model.nodes.map((n) => n.outputs[0])]);

      const session = await ort.InferenceSession.create(encodeModel(model), { intraOpNumThreads: 1 });
      try {
        const theirs = (await session.run({ input: new ort.Tensor('float32', input, [1, 3, size, size]) })).output!.data as Float32Array;
        expect(ours?.data).toHaveLength(7);
        const scale = Math.max(...Array.from(theirs, Math.abs));
        expect(scale).toBeGreaterThan(0.01); // not a degenerate all-zero network
        for (let i = 0; i < 7; i++) expect(Math.abs(ours!.data[i]! - theirs[i]!)).toBeLessThan(1e-4 * scale + 1e-6);
      } finally {
        await session.release();
      }
    });
  }

  it('refuses ops it does not implement, by name', async () => {
    const model = buildModel(16);
    model.nodes.push({ op: 'Softmax', name: 'sm', inputs: ['output'], outputs: ['probs'] });
    await expect(runReference(model, { dims: [3, 16, 16], data: new Float32Array(3 * 16 * 16) }, () => {})).rejects.toThrow(/unsupported op Softmax/);
  });
});
