import { describe, expect, it } from 'vitest';
import { ModelMismatchError, checkModel } from '../../src/inference/model-check.js';
import type { LoadedModel } from '../../src/inference/protocol.js';
import { PRESETS } from '../../src/vision/presets.js';

function model(input: (number | string)[], type = 'float32', output: (number | string)[] = ['batch_size', 1000]): LoadedModel {
  return {
    provider: 'cpu',
    failures: [],
    input: { name: 'data', type, shape: input },
    output: { name: 'prob', type: 'float32', shape: output },
    loadMs: 1,
  };
}

function mismatch(m: LoadedModel, spec = PRESETS.imagenet, labels = 1000): string {
  try {
    checkModel(m, spec, labels);
  } catch (err) {
    expect(err).toBeInstanceOf(ModelMismatchError);
    expect((err as Error).name).toBe('ModelMismatchError');
    return (err as Error).message;
  }
  throw new Error('checkModel accepted the model');
}

describe('checkModel: accepted models', () => {
  it('symbolic batch, float32', () => {
    expect(checkModel(model(['batch_size', 3, 224, 224]), PRESETS.imagenet, 1000)).toBe('float32');
  });

  it('float16 and uint8 inputs give their dtype', () => {
    expect(checkModel(model([1, 3, 224, 224], 'float16'), PRESETS['caffe-bgr'], 1000)).toBe('float16');
    expect(checkModel(model([1, 3, 224, 224], 'uint8'), PRESETS.imagenet, 1000)).toBe('uint8');
  });

  it('fixed batch 1 and fully symbolic image dims', () => {
    expect(checkModel(model([1, 3, 224, 224]), PRESETS.imagenet, 1000)).toBe('float32');
    expect(checkModel(model(['N', 'C', 'H', 'W']), PRESETS.imagenet, 1000)).toBe('float32');
  });

  it('an NHWC model under an NHWC spec', () => {
    const spec = { ...PRESETS.imagenet, layout: 'nhwc' as const, size: 192 };
    expect(checkModel(model([1, 192, 192, 3], 'uint8'), spec, 1000)).toBe('uint8');
  });

  it('symbolic output dims are not checked against the labels', () => {
    expect(checkModel(model([1, 3, 224, 224], 'float32', ['batch', 'classes']), PRESETS.imagenet, 17)).toBe('float32');
    expect(checkModel(model([1, 3, 224, 224], 'float32', [1, 'classes', 1, 1]), PRESETS.imagenet, 17)).toBe('float32');
  });

  it('output classes spread over trailing 1-dims ([1,1000,1,1], SqueezeNet style)', () => {
    expect(checkModel(model([1, 3, 224, 224], 'float16', [1, 1000, 1, 1]), PRESETS['caffe-bgr'], 1000)).toBe('float16');
  });
});

describe('checkModel: rejected models', () => {
  it('wrong image size: names the dimension, the expected value and the fix', () => {
    const msg = mismatch(model([1, 3, 299, 299]));
    expect(msg).toContain('"data"');
    expect(msg).toContain('[1,3,299,299]');
    expect(msg).toContain('height should be 224');
    expect(msg).toContain('model.preprocess.size');
  });

  it('wrong width only', () => {
    expect(mismatch(model([1, 3, 224, 320]))).toContain('width should be 224');
  });

  it('an NHWC model under an NCHW preset: the hint mentions nhwc', () => {
    const msg = mismatch(model([1, 224, 224, 3]));
    expect(msg).toContain('channels should be 3');
    expect(msg).toContain('model.preprocess.layout');
    expect(msg).toMatch(/nhwc/);
  });

  it('an NCHW model under an NHWC spec: the hint mentions nchw', () => {
    const msg = mismatch(model([1, 3, 224, 224]), { ...PRESETS.imagenet, layout: 'nhwc' });
    expect(msg).toMatch(/height should be 224/);
    expect(msg).toMatch(/nchw/);
  });

  it('a fixed batch other than 1', () => {
    const msg = mismatch(model([8, 3, 224, 224]));
    expect(msg).toContain('batch should be 1');
    expect(msg).toContain('batch size 1');
  });

  it('output classes differ from the label count: both numbers are in the message', () => {
    const msg = mismatch(model([1, 3, 224, 224], 'float32', [1, 1001]), PRESETS.imagenet, 1000);
    expect(msg).toContain('1001 classes');
    expect(msg).toContain('1000 lines');
    expect(msg).toContain('"prob"');
    expect(mismatch(model([1, 3, 224, 224], 'float32', ['N', 10]), PRESETS.imagenet, 1000)).toMatch(/10 classes.*1000 lines/);
  });

  it('input rank other than 4', () => {
    expect(mismatch(model([1, 150528]))).toMatch(/\[1,150528\].*4 dimensions/);
    expect(mismatch(model([3, 224, 224]))).toMatch(/4 dimensions/);
    expect(mismatch(model([1, 1, 3, 224, 224]))).toMatch(/4 dimensions/);
  });

  it('unsupported input types', () => {
    for (const type of ['int64', 'int8', 'float64', 'string']) {
      const msg = mismatch(model([1, 3, 224, 224], type));
      expect(msg).toContain(`type ${type}`);
      expect(msg).toContain('supported: float32, float16, uint8');
    }
  });
});
