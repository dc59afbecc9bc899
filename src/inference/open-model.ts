import type { Logger } from '../core/logger.js';
import type { PreprocessSpec } from '../config/schema.js';
import { loadLabels } from '../vision/labels.js';
import { inputDims, type InputDType, type TensorData } from '../vision/preprocess.js';
import { InferenceWorker, type InferenceResult } from './inference-worker.js';
import { checkInput, checkOutput, ModelMismatchError } from './model-check.js';
import { identifyModel, type ModelIdentity } from './model-identity.js';
import type { LoadOptions, LoadedModel } from './protocol.js';

/**
 * Opening a model, the one way every caller does it (the daemon's Classifier, the update
 * validator, the bench, `classify` and `release publish`): the file is identified (ModelFileError),
 * the labels read (LabelsFileError), the model loaded in its own worker thread with the first
 * configured execution provider that works (ModelLoadError when none does), its input checked
 * against the preprocessing and its output against the labels (ModelMismatchError), and one
 * all-zero frame run through it, which catches runtime failures and symbolic output sizes before
 * any real frame. The error classes are what the CLI's exit codes go by.
 */

/** The steps that call into the worker, so that a caller's guard can word its failures by step. */
export type OpenStep = 'load' | 'warm-up';

/** Wraps each call into the worker (the validator puts its deadline here). */
export type WorkerCallGuard = <T>(call: Promise<T>, step: OpenStep) => Promise<T>;

export interface OpenModelOptions extends LoadOptions {
  /** Without labels the output is not checked; the warm-up's output size tells the class count. */
  labelsPath?: string | undefined;
  name?: string | undefined;
  version?: string | undefined;
  preprocess: PreprocessSpec;
}

export interface OpenModelDeps {
  /** The worker's logger (provider fallbacks, crashes). */
  logger: Logger;
  /** The compiled worker entry (dist/inference/worker.js). */
  workerUrl: URL;
  guard?: WorkerCallGuard | undefined;
  /** Told of the load before the checks, so that a report can name the provider of a model that does not fit. */
  onLoaded?: ((model: LoadedModel) => void) | undefined;
}

export interface OpenedModel<Labels extends string[] | undefined = string[] | undefined> {
  /** Loaded and warmed up; the caller stops it. */
  worker: InferenceWorker;
  identity: ModelIdentity;
  labels: Labels;
  loaded: LoadedModel;
  inputType: InputDType;
  /** The input dimensions the preprocessing produces. */
  dims: number[];
  /** The all-zero frame's run. What NaN in it means is the caller's call: a warning in the daemon, a refusal in the validator. */
  warmUp: InferenceResult;
}

/** An all-zero input: the warm-up frame, and the validator's timing input (the values do not change a classifier's work). */
export function zeroInput(dtype: InputDType, dims: number[]): TensorData {
  const n = dims.reduce((a, b) => a * b, 1);
  return dtype === 'float32' ? new Float32Array(n) : dtype === 'float16' ? new Uint16Array(n) : new Uint8Array(n);
}

/** A worker for the model, not started; the Classifier restarts a crashed one with this, without the checks. */
export function modelWorker(deps: Pick<OpenModelDeps, 'logger' | 'workerUrl'>, options: LoadOptions): InferenceWorker {
  const { modelPath, providers, intraOpThreads, allowSpinning, deviceId } = options;
  // Only the load options cross into the thread, not the caller's whole options object.
  const config: LoadOptions = { modelPath, providers, intraOpThreads, deviceId, ...(allowSpinning === undefined ? {} : { allowSpinning }) };
  return new InferenceWorker({ logger: deps.logger, workerUrl: deps.workerUrl, config });
}

export function openModel(deps: OpenModelDeps, options: OpenModelOptions & { labelsPath: string }): Promise<OpenedModel<string[]>>;
export function openModel(deps: OpenModelDeps, options: OpenModelOptions): Promise<OpenedModel>;
export async function openModel(deps: OpenModelDeps, options: OpenModelOptions): Promise<OpenedModel> {
  const identity = await identifyModel(options.modelPath, options.name, options.version);
  const labels = options.labelsPath === undefined ? undefined : await loadLabels(options.labelsPath);
  const worker = modelWorker(deps, options);
  const calls = trackCalls(deps.guard);
  try {
    const loaded = await calls.run(worker.start(), 'load');
    deps.onLoaded?.(loaded);
    const inputType = checkInput(loaded.input, options.preprocess);
    if (labels) checkOutput(loaded.output, labels.length);
    const dims = inputDims(options.preprocess);
    const warmUp = await calls.run(worker.run(zeroInput(inputType, dims), dims), 'warm-up');
    if (labels && warmUp.output.length !== labels.length) {
      throw new ModelMismatchError(`model output has ${warmUp.output.length} values per frame but the labels file has ${labels.length} lines`, 'output');
    }
    return { worker, identity, labels, loaded, inputType, dims, warmUp };
  } catch (err) {
    await calls.release(worker, deps.logger);
    throw err;
  }
}

/**
 * Terminating a worker thread while onnxruntime is inside a native call (session create or run)
 * aborts the whole process (onnxruntime-node 1.30), so after a failure the worker is stopped only
 * once every call into it has returned: at once when none is left (the usual case), in the
 * background when a guard gave up on one (a deadline), so that openModel still fails at once.
 */
function trackCalls(guard: WorkerCallGuard = (call) => call) {
  const pending = new Set<Promise<unknown>>();
  return {
    run<T>(call: Promise<T>, step: OpenStep): Promise<T> {
      pending.add(call);
      const done = (): void => void pending.delete(call);
      call.then(done, done);
      return guard(call, step);
    },
    /** Resolves once the worker is stopped, or at once when that has to wait for a call a guard gave up on. */
    async release(worker: InferenceWorker, logger: Logger): Promise<void> {
      const stopped = Promise.allSettled([...pending]).then(() => worker.stop(0));
      if (pending.size === 0) return stopped;
      stopped.catch((err: unknown) => logger.error({ err }, 'cannot stop the worker of a model that failed to open'));
    },
  };
}
