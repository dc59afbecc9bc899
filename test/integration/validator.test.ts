import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { validateModel, type ValidationImage, type ValidationRequest } from '../../src/updates/validator.js';
import { InferenceWorker } from '../../src/inference/inference-worker.js';
import { buildDemoModel, demoLabels } from '../../src/modelgen/demo-model.js';
import { buildSlowModel } from '../../src/modelgen/test-models.js';
import { encodeModel, floatTensor } from '../../src/modelgen/onnx-writer.js';
import { DEMO_PALETTE } from '../../src/camera/palette.js';
import { createSystemClock } from '../../src/core/clock.js';
import { colourImage, tempDir } from '../helpers/fixtures.js';
import { createPreprocessor } from '../../src/vision/preprocess.js';
import { resolvePreprocess } from '../../src/vision/presets.js';
import { toProbabilities } from '../../src/vision/postprocess.js';
import { referenceTop } from '../../src/updates/validation-gate.js';
import { readFile } from 'node:fs/promises';

// The compiled worker entry (built by `pretest`): the same file the daemon runs.
const workerUrl = new URL('../../dist/inference/worker.js', import.meta.url);
const deps = { logger: pino({ level: 'silent' }), clock: createSystemClock(), workerUrl };
const imagenet = { preset: 'imagenet' as const };

/**
 * The demo model's graph with the palette rotated by one: a valid model of the right shapes
 * whose weights are wrong (colour k comes out as class k-1).
 */
function permutedDemoModel(): Uint8Array {
  const K = DEMO_PALETTE.length;
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  const W = new Array<number>(3 * K).fill(0);
  const b: number[] = [];
  for (let k = 0; k < K; k++) {
    const rgb = DEMO_PALETTE[(k + 1) % K]!.rgb;
    const n = [0, 1, 2].map((c) => (rgb[c]! / 255 - mean[c]!) / std[c]!);
    n.forEach((v, c) => (W[c * K + k] = 8 * v));
    b.push(-4 * n.reduce((a, v) => a + v * v, 0));
  }
  return encodeModel({
    name: 'permuted-demo',
    inputs: [{ name: 'input', type: 'float32', shape: [1, 3, 224, 224] }],
    outputs: [{ name: 'output', type: 'float32', shape: [1, K] }],
    nodes: [
      { op: 'ReduceMean', name: 'pool', inputs: ['input'], outputs: ['pooled'], attrs: { axes: { ints: [2, 3] }, keepdims: { i: 0 } } },
      { op: 'MatMul', name: 'fc', inputs: ['pooled', 'W'], outputs: ['logits'] },
      { op: 'Add', name: 'bias', inputs: ['logits', 'b'], outputs: ['output'] },
    ],
    initializers: [floatTensor('W', [3, K], W), floatTensor('b', [K], b)],
    opset: 13,
  });
}

describe('validateModel (candidate in its own inference worker)', () => {
  const dir = tempDir('ec-validator-');
  const path = (name: string): string => join(dir, name);
  let images: ValidationImage[] = [];
  const golden = path('golden');

  const request = (modelPath: string, extra: Partial<ValidationRequest> = {}): ValidationRequest => ({
    modelPath,
    labelsPath: path('labels.txt'),
    modelJson: imagenet,
    validationImages: images,
    goldenSet: golden,
    providers: ['cpu'],
    thresholds: { min_top1_agreement: 0.9, max_latency_factor: 2 },
    baseline: { modelPath: path('good.onnx'), modelJson: imagenet },
    ...extra,
  });

  beforeAll(async () => {
    mkdirSync(path('validation'));
    mkdirSync(golden);
    const tsv: string[] = ['# file<TAB>label index'];
    for (const [k, c] of DEMO_PALETTE.entries()) {
      writeFileSync(path(`validation/${c.name}.jpg`), await colourImage(c.name));
      images.push({ path: path(`validation/${c.name}.jpg`), expectedIndex: k });
      writeFileSync(join(golden, `${c.name}.png`), await colourImage(c.name, { width: 200, height: 300, format: 'png' }));
      tsv.push(`${c.name}.png\t${k}`);
    }
    writeFileSync(join(golden, 'expected.tsv'), `${tsv.join('\n')}\n`);
    writeFileSync(path('labels.txt'), demoLabels());
    writeFileSync(path('labels7.txt'), demoLabels().split('\n').slice(1).join('\n'));
    writeFileSync(path('good.onnx'), buildDemoModel());
    writeFileSync(path('nhwc.onnx'), buildDemoModel({ layout: 'nhwc' }));
    writeFileSync(path('permuted.onnx'), permutedDemoModel());
    writeFileSync(path('slow.onnx'), buildSlowModel({ repeats: 150 }));
    writeFileSync(path('garbage.onnx'), 'this is not an ONNX model, just text\n'.repeat(50));
  });

  afterAll(() => {
    images = [];
  });

  it('passes a good model: loads on cpu, input fits, warm-up, 100% agreement, latency like the current one', async () => {
    const report = await validateModel(deps, request(path('good.onnx')));
    expect(report.reasons).toEqual([]);
    expect(report).toMatchObject({ ok: true, provider: 'cpu', inputOk: true, agreement: { matched: 16, total: 16 } });
    expect(report.sets).toMatchObject([
      { name: 'release', matched: 8, total: 8, images: 8, meanDistance: undefined },
      { name: 'golden', matched: 8, total: 8, images: 8 },
    ]);
    expect(report.warmupMs).toBeGreaterThan(0);
    expect(report.medianMs).toBeGreaterThan(0);
    expect(report.currentMedianMs).toBeGreaterThan(0); // the baseline, timed the same way
  });

  it('fails a model whose output does not match the label count', async () => {
    const report = await validateModel(deps, request(path('good.onnx'), { labelsPath: path('labels7.txt') }));
    expect(report.ok).toBe(false);
    expect(report.inputOk).toBe(true);
    expect(report.reasons).toEqual([expect.stringMatching(/has 8 classes .* but the labels file has 7 lines/)]);
  });

  it('fails an NHWC model under an NCHW preset', async () => {
    const report = await validateModel(deps, request(path('nhwc.onnx')));
    expect(report).toMatchObject({ ok: false, inputOk: false, provider: 'cpu' });
    expect(report.reasons).toEqual([expect.stringMatching(/^input shape \[1,224,224,3\] \(float32\) does not fit preset imagenet \(224, nchw\): /)]);
  });

  it('fails a model with wrong weights on top-1 agreement, per set', async () => {
    const report = await validateModel(deps, request(path('permuted.onnx')));
    expect(report.ok).toBe(false);
    expect(report.agreement).toEqual({ matched: 0, total: 16 });
    expect(report.reasons).toEqual([
      'top-1 agreement 0/8 below 90% on the release validation images',
      `top-1 agreement 0/8 below 90% on the golden set ${golden}`,
    ]);
  });

  it('fails a slow model on the latency factor', async () => {
    const report = await validateModel(deps, request(path('slow.onnx'), { goldenSet: undefined, validationImages: [] }));
    expect(report.ok).toBe(false);
    expect(report.reasons).toEqual([expect.stringMatching(/^median [\d.]+ ms is \d+\.\dx the current [\d.]+ ms \(max 2x\)$/)]);
    expect(report.medianMs! / report.currentMedianMs!).toBeGreaterThan(2);
  });

  it('fails a file that is not a model at load', async () => {
    const report = await validateModel(deps, request(path('garbage.onnx')));
    expect(report).toMatchObject({ ok: false, provider: undefined, inputOk: false });
    expect(report.reasons).toEqual([expect.stringMatching(/^cannot load with cpu: cannot load model .*garbage\.onnx: /)]);
  });

  it('reports a malformed golden set and unusable images', async () => {
    const bad = path('bad-golden');
    mkdirSync(bad);
    writeFileSync(join(bad, 'expected.tsv'), 'red.png\t0\nblue.png two\n');
    const report = await validateModel(deps, request(path('good.onnx'), { goldenSet: bad }));
    expect(report.reasons).toEqual([expect.stringMatching(/expected\.tsv line 2: expected "file<TAB>label index"/)]);

    writeFileSync(path('broken.jpg'), 'not a jpeg');
    const broken = [...images, { path: path('broken.jpg'), expectedIndex: 0 }];
    const r2 = await validateModel(deps, request(path('good.onnx'), { validationImages: broken, goldenSet: undefined }));
    // An unusable image refuses the release on its own; the other 8 still agree.
    expect(r2.reasons).toEqual([expect.stringMatching(/^1 of the release validation images unusable: broken\.jpg: cannot decode image/)]);
    expect(r2.ok).toBe(false);
    expect(r2.agreement).toEqual({ matched: 8, total: 8 });
  });

  it('gives up on a candidate that takes too long', async () => {
    const report = await validateModel(deps, request(path('slow.onnx'), { timeoutMs: 300, timingRuns: 50 }));
    expect(report.ok).toBe(false);
    expect(report.reasons.join()).toMatch(/validation did not finish within 300 ms/);
  });

  /** What `release publish` records: the model's top-K probabilities on each image, and the truth by name. */
  async function withReference(modelPath: string): Promise<ValidationImage[]> {
    const worker = new InferenceWorker({ logger: pino({ level: 'silent' }), workerUrl, config: { modelPath, providers: ['cpu'], intraOpThreads: 1, deviceId: 0 } });
    await worker.start();
    const prepare = createPreprocessor(resolvePreprocess('imagenet'), 'float32');
    const out: ValidationImage[] = [];
    try {
      for (const [k, c] of DEMO_PALETTE.entries()) {
        const file = path(`validation/${c.name}.jpg`);
        const t = await prepare(await readFile(file));
        const top = referenceTop(toProbabilities((await worker.run(t.data, t.dims)).output, 'auto'));
        out.push({ path: file, expectedIndex: top[0]!.index, top, truth: [DEMO_PALETTE[k]!.name] });
      }
    } finally {
      await worker.stop();
    }
    return out;
  }

  it('passes a good model against its reference vectors, and refuses a wrong one on distance and confident top-1', async () => {
    const reference = await withReference(path('good.onnx'));
    expect(reference.map((r) => r.expectedIndex)).toEqual(DEMO_PALETTE.map((_, k) => k)); // the reference itself is right
    const good = await validateModel(deps, request(path('good.onnx'), { validationImages: reference, goldenSet: undefined }));
    expect(good.reasons).toEqual([]);
    expect(good.sets[0]!.meanDistance).toBeLessThan(0.01);
    expect(good.sets[0]).toMatchObject({ labelled: 8, correct: 8 });

    const wrong = await validateModel(deps, request(path('permuted.onnx'), { validationImages: reference, goldenSet: undefined }));
    expect(wrong.ok).toBe(false);
    expect(wrong.sets[0]!.meanDistance).toBeGreaterThan(0.5);
    expect(wrong.reasons.join('\n')).toMatch(/outputs differ from the publisher's by [\d.]+ on average/);
    expect(wrong.reasons.join('\n')).toMatch(/accuracy 0\/8 on the labelled images/);
  });

  it("refuses labels shuffled against the model's outputs, by the truth names", async () => {
    const reference = await withReference(path('good.onnx'));
    const rotated = demoLabels().trim().split('\n');
    writeFileSync(path('labels-rotated.txt'), `${[...rotated.slice(1), rotated[0]].join('\n')}\n`);
    const report = await validateModel(deps, request(path('good.onnx'), { validationImages: reference, goldenSet: undefined, labelsPath: path('labels-rotated.txt') }));
    expect(report.ok).toBe(false);
    expect(report.sets[0]).toMatchObject({ labelled: 8, correct: 0 });
    // The outputs themselves are the publisher's: only the truth check can see this.
    expect(report.sets[0]!.meanDistance).toBeLessThan(0.01);
    expect(report.reasons.join('\n')).toMatch(/accuracy 0\/8 on the labelled images .* below the minimum 50%/);
  });

  it('refuses a candidate clearly less accurate than the serving model on the labelled images', async () => {
    const reference = await withReference(path('good.onnx'));
    const loose = { min_top1_agreement: 0, max_latency_factor: 100, max_mean_distance: 1, min_accuracy: 0, max_accuracy_drop: 1 };
    const report = await validateModel(
      deps,
      request(path('permuted.onnx'), { validationImages: reference, goldenSet: undefined, thresholds: { ...loose, max_accuracy_drop: 0.15 }, baseline: { modelPath: path('good.onnx'), modelJson: imagenet, labelsPath: path('labels.txt') } }),
    );
    expect(report.baselineAccuracy).toEqual({ correct: 8, labelled: 8 });
    expect(report.reasons).toContain('accuracy 0/8 is more than 15% below the serving model on the same images (8/8)');
    // Control: the same candidate with the drop allowed passes, so it was that check.
    const allowed = await validateModel(deps, request(path('permuted.onnx'), { validationImages: reference, goldenSet: undefined, thresholds: loose, baseline: { modelPath: path('good.onnx'), modelJson: imagenet, labelsPath: path('labels.txt') } }));
    expect(allowed.reasons).toEqual([]);
  });

  it('refuses non-finite outputs (a preprocessing scale that overflows)', async () => {
    const reference = await withReference(path('good.onnx'));
    const report = await validateModel(deps, request(path('good.onnx'), { validationImages: reference, goldenSet: undefined, modelJson: { preset: 'imagenet', preprocess: { scale: 1e308 } } }));
    expect(report.ok).toBe(false);
    expect(report.nonFinite).toBe(8);
    expect(report.reasons.join('\n')).toMatch(/non-finite outputs \(NaN or Infinity\) on 8 of the release validation images/);
  });

  it('leaves the serving model serving while a candidate is validated', async () => {
    const serving = new InferenceWorker({
      logger: pino({ level: 'silent' }),
      workerUrl,
      config: { modelPath: path('good.onnx'), providers: ['cpu'], intraOpThreads: 1, deviceId: 0 },
    });
    await serving.start();
    let validating = true;
    let served = 0;
    const times: number[] = [];
    const validation = validateModel(deps, request(path('slow.onnx'), { timingRuns: 15 })).finally(() => (validating = false));
    while (validating) {
      const t0 = performance.now();
      await serving.run(new Float32Array(3 * 224 * 224), [1, 3, 224, 224]);
      times.push(performance.now() - t0);
      served++;
      await new Promise((r) => setTimeout(r, 5));
    }
    const report = await validation;
    await serving.stop();
    expect(report.medianMs).toBeGreaterThan(20); // the candidate really was busy all along
    expect(served).toBeGreaterThan(50);
    times.sort((a, b) => a - b);
    // Each serving run stays far below one candidate run: they never queue behind it.
    expect(times[Math.floor(times.length / 2)]!).toBeLessThan(report.medianMs! / 4);
  });
});
