import { describe, expect, it } from 'vitest';
import { encodeModel, floatTensor } from '../../src/modelgen/onnx-writer.js';
import { listInitializers, ONNX_DTYPE, tamperInitializer } from '../../src/modelgen/onnx-tamper.js';

const W = [0.5, -1.25, 3, 0, 7.5, -2];
const model = encodeModel({
  name: 'tamper',
  inputs: [{ name: 'x', type: 'float32', shape: [1, 2] }],
  outputs: [{ name: 'y', type: 'float32', shape: [1, 3] }],
  nodes: [{ op: 'MatMul', name: 'mm', inputs: ['x', 'W'], outputs: ['y'] }],
  initializers: [floatTensor('W', [2, 3], W)],
  opset: 13,
});

function valuesOf(buf: Uint8Array, name: string): number[] {
  const raw = listInitializers(buf).find((i) => i.name === name)!.raw!;
  return [...new Float32Array(buf.slice(raw.offset, raw.offset + raw.length).buffer)];
}

describe('onnx-tamper', () => {
  it('lists initializers with their type, dims and raw bytes', () => {
    const [w] = listInitializers(model);
    expect(w).toMatchObject({ name: 'W', dataType: ONNX_DTYPE.float, dims: [2, 3] });
    expect(valuesOf(model, 'W')).toEqual(W);
  });

  it('negates or zeroes one tensor in a copy, same length, the original untouched', () => {
    const neg = tamperInitializer(model, 'W', 'negate');
    expect(neg.length).toBe(model.length);
    expect(valuesOf(neg, 'W')).toEqual(W.map((v) => (v === 0 ? -0 : -v)));
    expect(valuesOf(tamperInitializer(model, 'W', 'zero'), 'W')).toEqual(W.map(() => 0));
    expect(valuesOf(model, 'W')).toEqual(W);
    expect(() => tamperInitializer(model, 'nope', 'zero')).toThrow(/no initializer named nope/);
  });
});
