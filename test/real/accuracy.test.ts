import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { groundTruth, requireShared, sharedPath } from './shared.js';

// The real ImageNet models in ../shared must reach the reference accuracy with `classify`.

interface Line {
  file: string;
  top: { index: number; label: string; score: number }[];
}

async function top1(model: string, preset: string, set: 'photos' | 'imagenet-50'): Promise<{ correct: number; total: number; misses: string[] }> {
  const r = await runCli([
    'classify',
    '--model', sharedPath('models', model),
    '--labels', sharedPath('labels', 'synset.txt'),
    '--preset', preset,
    '--providers', 'cpu',
    '--top-k', '5',
    sharedPath('images', set),
  ]);
  expect(r.code, r.stderr).toBe(0);
  const truth = groundTruth(`${set}.tsv`);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Line);
  expect(lines).toHaveLength(truth.size);
  const misses = lines.filter((l) => !truth.get(l.file)?.has(l.top[0]!.index)).map((l) => `${l.file}: ${l.top[0]?.label}`);
  const total = lines.length;
  // Printed so a run shows the figures, not only pass/fail.
  console.log(`${model} (${preset}) on ${set}: ${total - misses.length}/${total} top-1${misses.length ? `; misses: ${misses.join('; ')}` : ''}`);
  return { correct: total - misses.length, total, misses };
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
