import { afterAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { openModel, type OpenStep, type OpenedModel } from '../../src/inference/open-model.js';
import { ModelMismatchError } from '../../src/inference/model-check.js';
import { ModelLoadError } from '../../src/inference/inference-worker.js';
import { ModelFileError, sha256File } from '../../src/inference/model-identity.js';
import { LabelsFileError } from '../../src/vision/labels.js';
import { encodeModel } from '../../src/modelgen/onnx-writer.js';
import { buildSlowModel } from '../../src/modelgen/test-models.js';
import { DEMO_PALETTE } from '../../src/camera/palette.js';
import { resolvePreprocess } from '../../src/vision/presets.js';
import { tempDir, writeColourModel } from '../helpers/fixtures.js';

// The compiled worker entry (built by `pretest`): the same file the daemon runs.
const workerUrl = new URL('../../dist/inference/worker.js', import.meta.url);
const deps = { logger: pino({ level: 'silent' }), workerUrl };
const imagenet = resolvePreprocess('imagenet');
const cpu = { providers: ['cpu' as const], intraOpThreads: 1, deviceId: 0 };

/**
 * Symbolic image dims, so onnxruntime cannot tell the class count before a run: 2x2 max-pooled
 * cells of 3 channels, 12 values for a 224x224 frame. (A fixed input lets onnxruntime work out
 * the output's shape at load, whatever the graph declares.)
 */
function symbolicOutputModel(): Uint8Array {
  return encodeModel({
    name: 'symbolic-output',
    inputs: [{ name: 'input', type: 'float32', shape: [1, 3, 'height', 'width'] }],
    outputs: [{ name: 'output', type: 'float32', shape: [1, 'classes'] }],
    nodes: [
      { op: 'MaxPool', name: 'pool', inputs: ['input'], outputs: ['pooled'], attrs: { kernel_shape: { ints: [112, 112] }, strides: { ints: [112, 112] } } },
      { op: 'Flatten', name: 'flat', inputs: ['pooled'], outputs: ['output'], attrs: { axis: { i: 1 } } },
    ],
    initializers: [],
    opset: 13,
  });
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: Error) => err,
  );
}

describe('openModel (real onnxruntime in a worker thread)', () => {
  const dir = tempDir('ec-open-model-');
  const path = (name: string): string => join(dir, name);
  const colours = writeColourModel(dir);
  const nhwc = writeColourModel(dir, { layout: 'nhwc' }, 'nhwc');
  writeFileSync(path('labels7.txt'), DEMO_PALETTE.slice(1).map((c) => c.name).join('\n') + '\n');
  writeFileSync(path('symbolic.onnx'), symbolicOutputModel());
  writeFileSync(path('slow.onnx'), buildSlowModel());
  const opened: OpenedModel[] = [];
  afterAll(() => Promise.all(opened.map((m) => m.worker.stop())));

  it('returns a loaded, checked and warmed-up worker, with the identity and labels', async () => {
    const steps: OpenStep[] = [];
    const model = await openModel(
      { ...deps, guard: (call, step) => (steps.push(step), call) },
      { ...cpu, modelPath: colours.model, labelsPath: colours.labels, preprocess: imagenet, version: '1.2.3' },
    );
    opened.push(model);
    expect(steps).toEqual(['load', 'warm-up']);
    expect(model.labels).toEqual(DEMO_PALETTE.map((c) => c.name));
    expect(model).toMatchObject({ inputType: 'float32', dims: [1, 3, 224, 224], loaded: { provider: 'cpu', failures: [] } });
    expect(model.identity).toEqual({ name: 'colors', version: '1.2.3', sha256: await sha256File(colours.model) });
    expect(model.warmUp.output).toHaveLength(DEMO_PALETTE.length);
    expect(model.warmUp.output.every(Number.isFinite)).toBe(true);
    // Ready for frames: no further start.
    const run = await model.worker.run(new Float32Array(3 * 224 * 224), model.dims);
    expect(run.output).toHaveLength(DEMO_PALETTE.length);
  });

  it('falls back past providers whose libraries are absent, and says why each failed', async () => {
    const model = await openModel(deps, { ...cpu, providers: ['tensorrt', 'cuda', 'cpu'], modelPath: colours.model, labelsPath: colours.labels, preprocess: imagenet });
    opened.push(model);
    expect(model.loaded.provider).toBe('cpu');
    expect(model.loaded.failures.map((f) => f.provider)).toEqual(['tensorrt', 'cuda']);
    for (const f of model.loaded.failures) expect(f.error).not.toBe('');
  });

  it('is a ModelLoadError when no provider can load the model', async () => {
    const err = await rejection(openModel(deps, { ...cpu, providers: ['tensorrt', 'cuda'], modelPath: colours.model, preprocess: imagenet }));
    expect(err).toBeInstanceOf(ModelLoadError);
    expect(err.message).toMatch(/^cannot load model .*colors\.onnx: tensorrt: .*; cuda: /);
  });

  it('is a ModelMismatchError naming the part: the input against the preset, the output against the labels', async () => {
    let provider: string | undefined;
    const input = await rejection(
      openModel({ ...deps, onLoaded: (m) => (provider = m.provider) }, { ...cpu, modelPath: nhwc.model, labelsPath: nhwc.labels, preprocess: imagenet }),
    );
    expect(input).toBeInstanceOf(ModelMismatchError);
    expect(input).toMatchObject({ part: 'input', message: expect.stringMatching(/^model input "input" has shape \[1,224,224,3\] but its channels should be 3/) });
    expect(provider).toBe('cpu'); // told of the load before the check failed

    const output = await rejection(openModel(deps, { ...cpu, modelPath: colours.model, labelsPath: path('labels7.txt'), preprocess: imagenet }));
    expect(output).toBeInstanceOf(ModelMismatchError);
    expect(output).toMatchObject({ part: 'output', message: expect.stringMatching(/has 8 classes \(shape \[1,8\]\) but the labels file has 7 lines$/) });
  });

  it('checks a symbolic class count on the warm-up run, and without labels reports the size', async () => {
    const err = await rejection(openModel(deps, { ...cpu, modelPath: path('symbolic.onnx'), labelsPath: colours.labels, preprocess: imagenet }));
    expect(err).toBeInstanceOf(ModelMismatchError);
    expect(err).toMatchObject({ part: 'output', message: 'model output has 12 values per frame but the labels file has 8 lines' });

    const unlabelled = await openModel(deps, { ...cpu, modelPath: path('symbolic.onnx'), preprocess: imagenet });
    opened.push(unlabelled);
    expect(unlabelled.labels).toBeUndefined();
    expect(unlabelled.warmUp.output).toHaveLength(12);
  });

  it('is a ModelFileError for a missing or empty model and a LabelsFileError for missing labels, before any worker', async () => {
    const missing = await rejection(openModel(deps, { ...cpu, modelPath: path('none.onnx'), labelsPath: colours.labels, preprocess: imagenet }));
    expect(missing).toBeInstanceOf(ModelFileError);
    expect(missing.message).toBe(`model file not found: ${path('none.onnx')}`);
    writeFileSync(path('empty.onnx'), '');
    await expect(openModel(deps, { ...cpu, modelPath: path('empty.onnx'), preprocess: imagenet })).rejects.toThrow(ModelFileError);

    const steps: OpenStep[] = [];
    const labels = await rejection(
      openModel({ ...deps, guard: (call, step) => (steps.push(step), call) }, { ...cpu, modelPath: colours.model, labelsPath: path('none.txt'), preprocess: imagenet }),
    );
    expect(labels).toBeInstanceOf(LabelsFileError);
    expect(labels.message).toMatch(/^cannot read labels file .*none\.txt: /);
    expect(steps).toEqual([]);
  });

  it('fails at once when its guard gives up on a call, and stops that worker only after the call returns', async () => {
    let warmUp: Promise<unknown> | undefined;
    let warmUpDone = false;
    const err = await rejection(
      openModel(
        {
          ...deps,
          guard: (call, step) => {
            if (step === 'load') return call;
            warmUp = call.finally(() => (warmUpDone = true));
            return Promise.reject(new Error('deadline'));
          },
        },
        { ...cpu, modelPath: path('slow.onnx'), labelsPath: colours.labels, preprocess: imagenet },
      ),
    );
    expect(err.message).toBe('deadline');
    expect(warmUpDone).toBe(false);
    // The warm-up run is still inside onnxruntime: terminating the thread then would abort this
    // process. It returns, and the worker is stopped after it, with the process still here.
    await warmUp;
    await new Promise((r) => setTimeout(r, 200));
    expect(warmUpDone).toBe(true);
  });
});
