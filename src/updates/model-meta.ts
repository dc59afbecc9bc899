import type { PreprocessSpec } from '../config/schema.js';
import type { LoadedModel, TensorMeta } from '../inference/protocol.js';
import { checkModel, ModelMismatchError } from '../inference/model-check.js';
import { resolvePreprocess } from '../vision/presets.js';
import type { ModelJson } from './manifest.js';

/**
 * The model's inputs/outputs as onnxruntime sees them, and the consistency rules between the
 * model, its labels and model.json, shared by `release publish` (which writes model.json from
 * them) and `release verify` (which checks it against them).
 */

export interface ModelIo {
  input: TensorMeta;
  output: TensorMeta;
}

/** Loads the model on the CPU only to read its first input and output (the ones the daemon uses). */
export async function readModelIo(modelPath: string): Promise<ModelIo> {
  // Imported lazily: the CLI entry point imports this module for every command, and the native
  // runtime has no business in the main thread of `run` (inference lives in a worker there).
  const ort = await import('onnxruntime-node');
  let session: Awaited<ReturnType<typeof ort.InferenceSession.create>>;
  try {
    session = await ort.InferenceSession.create(modelPath, { executionProviders: ['cpu'], graphOptimizationLevel: 'disabled', logSeverityLevel: 4 });
  } catch (err) {
    throw new ModelMismatchError(`cannot load model ${modelPath}: ${((err as Error).message.split('\n')[0] ?? '').trim()}`);
  }
  const meta = (m: (typeof session.inputMetadata)[number] | undefined, fallback: string): TensorMeta =>
    !m || !m.isTensor ? { name: m?.name ?? fallback, type: 'unknown', shape: [] } : { name: m.name, type: m.type, shape: [...m.shape] };
  try {
    return { input: meta(session.inputMetadata[0], session.inputNames[0] ?? ''), output: meta(session.outputMetadata[0], session.outputNames[0] ?? '') };
  } finally {
    await session.release();
  }
}

/** The class count the output shape fixes ([N,K], [N,K,1,1], [K]); undefined when symbolic. */
export function outputClasses(shape: readonly (number | string)[]): number | undefined {
  const dims = shape.length === 1 ? shape : shape.slice(1);
  return dims.reduce<number | undefined>((acc, d) => (typeof d === 'number' && d > 0 && acc !== undefined ? acc * d : undefined), 1);
}

function asLoaded(io: ModelIo): LoadedModel {
  return { provider: 'cpu', failures: [], input: io.input, output: io.output, loadMs: 0 };
}

/**
 * model.json's input/output for a model, checked the way the daemon will check it at startup
 * (checkModel): input type and shape against the preprocessing, output size against the labels.
 * Throws ModelMismatchError with the daemon's own wording, so the publisher sees the device's
 * refusal before shipping it.
 */
export function describeModelIo(io: ModelIo, preprocess: PreprocessSpec, labelCount: number): Pick<ModelJson, 'input' | 'output'> {
  const type = checkModel(asLoaded(io), preprocess, labelCount);
  return {
    input: { name: io.input.name, type, shape: io.input.shape },
    output: { name: io.output.name, classes: labelCount },
  };
}

/** Problems between model.json, the label count and (when available) the model itself. */
export function modelJsonProblems(modelJson: ModelJson, labelCount: number, io?: ModelIo): string[] {
  const problems: string[] = [];
  if (modelJson.output.classes !== labelCount) {
    problems.push(`model.json says ${modelJson.output.classes} classes but labels.txt has ${labelCount} lines`);
  }
  let spec: PreprocessSpec | undefined;
  try {
    spec = resolvePreprocess(modelJson.preset, modelJson.preprocess);
  } catch (err) {
    problems.push(`model.json preprocessing: ${(err as Error).message}`);
  }
  const declared: ModelIo = {
    input: { name: modelJson.input.name ?? 'input', type: modelJson.input.type, shape: modelJson.input.shape },
    output: { name: modelJson.output.name ?? 'output', type: 'float32', shape: [1, modelJson.output.classes] },
  };
  if (spec) {
    try {
      checkModel(asLoaded(declared), spec, modelJson.output.classes);
    } catch (err) {
      problems.push(`model.json input does not fit its preprocessing: ${(err as Error).message}`);
    }
  }
  if (io) {
    if (io.input.type !== modelJson.input.type) problems.push(`model.json input type ${modelJson.input.type}, the model's is ${io.input.type}`);
    if (JSON.stringify(io.input.shape) !== JSON.stringify(modelJson.input.shape)) {
      problems.push(`model.json input shape ${JSON.stringify(modelJson.input.shape)}, the model's is ${JSON.stringify(io.input.shape)}`);
    }
    if (modelJson.input.name !== undefined && modelJson.input.name !== io.input.name) {
      problems.push(`model.json input name "${modelJson.input.name}", the model's is "${io.input.name}"`);
    }
    const classes = outputClasses(io.output.shape);
    if (classes !== undefined && classes !== modelJson.output.classes) {
      problems.push(`model.json says ${modelJson.output.classes} classes, the model outputs ${classes} (shape ${JSON.stringify(io.output.shape)})`);
    }
  }
  return problems;
}
