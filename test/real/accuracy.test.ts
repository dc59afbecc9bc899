import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { classifyArgs, requireShared, scoreClassify, type ImageSet } from './shared.js';

// The real ImageNet models in ../shared must reach the reference accuracy with `classify`.

async function top1(model: string, preset: string, set: ImageSet): Promise<{ correct: number; total: number; misses: string[] }> {
  const r = await runCli(classifyArgs(model, preset, set));
  expect(r.code, r.stderr).toBe(0);
  const { correct, total, misses, truth } = scoreClassify(r.stdout, set);
  expect(total).toBe(truth.size);
  // Printed so a run shows the figures, not only pass/fail.
  console.log(`${model} (${preset}) on ${set}: ${correct}/${total} top-1${misses.length ? `; misses: ${misses.join('; ')}` : ''}`);
  return { correct, total, misses };
}

describe('reference accuracy on ../shared', () => {
  beforeAll(() => requireShared());

  it('mobilenetv2-12-int8 (QOperator int8): >= 17/22 photos, >= 32/50 imagenet-50', async () => {
    expect((await top1('mobilenetv2-12-int8.onnx', 'imagenet', 'photos')).correct).toBeGreaterThanOrEqual(17);
    expect((await top1('mobilenetv2-12-int8.onnx', 'imagenet', 'imagenet-50')).correct).toBeGreaterThanOrEqual(32);
  });

  it('squeezenet1.0-fp16 (float16 I/O, probabilities out) with caffe-bgr: >= 14/22 photos', async () => {
    expect((await top1('squeezenet1.0-fp16.onnx', 'caffe-bgr', 'photos')).correct).toBeGreaterThanOrEqual(14);
  });

  it('squeezenet1.0-fp16 with the wrong (imagenet) preset collapses, so the preset really is applied', async () => {
    expect((await top1('squeezenet1.0-fp16.onnx', 'imagenet', 'photos')).correct).toBeLessThanOrEqual(3);
  });

  it('shufflenet-v2-12-qdq (QDQ int8, batch 1 only): matches its reference 15/22 photos', async () => {
    expect((await top1('shufflenet-v2-12-qdq.onnx', 'imagenet', 'photos')).correct).toBeGreaterThanOrEqual(14);
  });
});
