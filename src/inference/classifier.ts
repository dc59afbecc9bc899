import type { Logger } from '../core/logger.js';
import type { RawFormat } from '../camera/frame.js';
import type { Clock } from '../core/clock.js';
import type { PreprocessSpec, ExecutionProvider } from '../config/schema.js';
import type { InferenceWorker } from './inference-worker.js';
import type { ModelIdentity } from './model-identity.js';
import { modelWorker, openModel, type OpenModelDeps } from './open-model.js';
import { createPreprocessor, type PreparedTensor, type InputDType } from '../vision/preprocess.js';
import { nonFinite, toProbabilities, topK, type OutputKind, type Scored } from '../vision/postprocess.js';

export interface ClassifierConfig {
  modelPath: string;
  labelsPath: string;
  name?: string | undefined;
  version?: string | undefined;
  preprocess: PreprocessSpec;
  output: OutputKind;
  providers: ExecutionProvider[];
  intraOpThreads: number;
  /** session.intra_op.allow_spinning (onnxruntime's default when absent). */
  allowSpinning?: boolean;
  deviceId: number;
}

/**
 * The model gave NaN or ±Infinity: no scores can come of it (softmax of Infinity is NaN, and a
 * NaN ranks nowhere), so the frame is an inference error, not an empty prediction.
 */
export class NonFiniteOutputError extends Error {
  override name = 'NonFiniteOutputError';
}

/** One line on what was not finite, for the error and the logs. */
export function describeNonFinite(output: ArrayLike<number>): string | undefined {
  const bad = nonFinite(output);
  if (!bad.first) return undefined;
  return `model output holds NaN or Infinity (${bad.count} of ${output.length} values; class ${bad.first.index} is ${bad.first.value}): broken weights or preprocessing (a std of 0?)`;
}

export interface ClassifierDeps {
  logger: Logger;
  clock: Clock;
  config: ClassifierConfig;
  workerUrl: URL;
}

export interface ActiveModel extends ModelIdentity {
  provider: ExecutionProvider;
  labels: number;
  inputType: InputDType;
}

export interface Classification {
  top: Scored[];
  inferenceMs: number;
  /** Probabilities of the requested label indices (watch rules), in request order. */
  scores: number[];
}

/**
 * The model as the rest of the daemon sees it: labels, preprocessing and the inference worker,
 * checked against each other at start. `prepare` runs on the main thread (sharp works on libuv
 * threads, so it overlaps with inference); `classify` runs in the worker.
 */
export class Classifier {
  private worker: InferenceWorker | undefined;
  private labels: string[] = [];
  private prep: ((data: Buffer, raw?: RawFormat) => Promise<PreparedTensor>) | undefined;
  private active: ActiveModel | undefined;
  private restarting = false;
  private stopped = false;
  private crashListener: (() => void) | undefined;

  constructor(private readonly deps: ClassifierDeps) {}

  get model(): ActiveModel | undefined {
    return this.active;
  }

  async start(): Promise<ActiveModel> {
    this.stopped = false;
    const { config, logger } = this.deps;
    const { worker, identity, labels, loaded, inputType, warmUp } = await openModel(this.workerDeps(), config);
    // A warning only: an all-zero frame is artificial (live frames that give NaN are inference errors).
    const bad = describeNonFinite(warmUp.output);
    if (bad) logger.warn({ model: config.modelPath, err: bad }, 'warm-up on an all-zero frame: non-finite output');
    this.labels = labels;
    this.prep = createPreprocessor(config.preprocess, inputType);
    this.adopt(worker);
    this.active = { ...identity, provider: loaded.provider, labels: labels.length, inputType };
    logger.info({ model: identity, provider: loaded.provider, loadMs: Math.round(loaded.loadMs) }, 'model loaded');
    return this.active;
  }

  /** Decode + resize + normalize one frame (throws FrameDecodeError for bad frames). */
  prepare(data: Buffer, raw?: RawFormat): Promise<PreparedTensor> {
    if (!this.prep) return Promise.reject(new Error('classifier not started'));
    return this.prep(data, raw);
  }

  async classify(tensor: PreparedTensor, k: number, watch: readonly number[] = []): Promise<Classification> {
    if (!this.worker) throw new Error('classifier not started');
    const { output, inferenceMs } = await this.worker.run(tensor.data, tensor.dims);
    const bad = describeNonFinite(output);
    if (bad) throw new NonFiniteOutputError(bad);
    const probs = toProbabilities(output, this.deps.config.output);
    return { top: topK(probs, k, this.labels), inferenceMs, scores: watch.map((i) => probs[i] ?? 0) };
  }

  /** The labels, in class order (for watch rules). */
  get labelList(): readonly string[] {
    return this.labels;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const worker = this.worker;
    this.worker = undefined;
    this.active = undefined;
    await worker?.stop();
  }

  private workerDeps(): Pick<OpenModelDeps, 'logger' | 'workerUrl'> {
    return { logger: this.deps.logger.child({ module: 'inference' }), workerUrl: this.deps.workerUrl };
  }

  /** The same model again, without the checks and warm-up it passed at start. */
  private async startWorker(): Promise<void> {
    const worker = modelWorker(this.workerDeps(), this.deps.config);
    await worker.start();
    this.adopt(worker);
  }

  private adopt(worker: InferenceWorker): void {
    worker.onCrash(() => void this.restartWorker());
    this.worker = worker;
  }

  /** Told about every worker crash (a model on probation is rolled back after repeated ones). */
  onWorkerCrash(listener: () => void): void {
    this.crashListener = listener;
  }

  /** A crashed worker is restarted with the same model, with backoff, for as long as it takes. */
  private async restartWorker(): Promise<void> {
    this.crashListener?.();
    if (this.restarting) return;
    this.restarting = true;
    const { logger, clock } = this.deps;
    this.worker = undefined;
    for (let attempt = 0; !this.stopped; attempt++) {
      await clock.sleep(Math.min(30_000, 500 * 2 ** attempt));
      if (this.stopped) break;
      try {
        await this.startWorker();
        logger.warn({ attempt: attempt + 1 }, 'inference worker restarted');
        break;
      } catch (err) {
        logger.error({ err, attempt: attempt + 1 }, 'inference worker restart failed');
      }
    }
    this.restarting = false;
  }
}
