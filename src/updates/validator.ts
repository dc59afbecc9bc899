/**
 * Validates a candidate model before activation, while the current model keeps serving.
 *
 * The candidate runs in its own InferenceWorker (a second worker thread, from the same compiled
 * entry as the daemon's), so a candidate that is slow, hangs or throws never blocks the serving
 * model or the event loop. It gets `intraOpNumThreads: 1`: onnxruntime's default is a thread per
 * core, which would take the serving model's cores for the whole validation; one thread leaves
 * them alone. Timings are therefore single-threaded, so they are compared with the current
 * model timed the same way: pass `baseline` (the current model, measured here under identical
 * conditions, after the candidate) rather than the daemon's multi-threaded latency, or a
 * `currentMedianMs` measured like this.
 *
 * Checks, in order (the first failure of a step that later steps depend on ends the run):
 * model.json preprocessing resolves; the labels load; the model loads with the configured
 * providers; its input fits the preset and its output the label count, and a warm-up run (openModel,
 * the daemon's own startup); no NaN or Infinity in any output; agreement with the
 * publisher's reference on the release's validation images and on the optional local golden set,
 * each on its own (a small local set must not drown in a large release set), judged by
 * validation-gate.ts (probability distance, confident top-1, truth accuracy); on labelled images,
 * accuracy not far below the serving model's; the median of `timingRuns` runs against the current
 * model's. A release without validation images (publishing allows that) and no golden set has no
 * agreement to check.
 */
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Logger } from '../core/logger.js';
import type { Clock } from '../core/clock.js';
import type { ExecutionProvider, PreprocessSpec, UpdatesConfig } from '../config/schema.js';
import type { LoadedModel, ProviderFailure } from '../inference/protocol.js';
import type { ModelJson } from './manifest.js';
import type { InferenceWorker } from '../inference/inference-worker.js';
import { ModelMismatchError } from '../inference/model-check.js';
import { openModel, zeroInput, type OpenModelDeps, type OpenModelOptions, type OpenedModel, type WorkerCallGuard } from '../inference/open-model.js';
import { loadLabels } from '../vision/labels.js';
import { resolvePreprocess } from '../vision/presets.js';
import { createPreprocessor, type InputDType, type PreparedTensor } from '../vision/preprocess.js';
import { toProbabilities } from '../vision/postprocess.js';
import { readGoldenSet } from './golden-set.js';
import { accuracyDrop, allFinite, argmax, judgeSet, type GateThresholds, type ReferenceScore, type SetVerdict } from './validation-gate.js';

export interface ValidationImage {
  path: string;
  /** The publisher's top-1. */
  expectedIndex: number;
  /** The publisher's top-K probabilities (releases since reference vectors). */
  top?: ReferenceScore[] | undefined;
  /** Label names a person accepts for the image. */
  truth?: string[] | undefined;
}

/** The gate's thresholds; those not given take the config's defaults. */
export type ValidationThresholds = Pick<UpdatesConfig['validation'], 'min_top1_agreement' | 'max_latency_factor'> & Partial<GateThresholds>;
export const DEFAULT_GATE: GateThresholds = { min_top1_agreement: 0.8, max_mean_distance: 0.24, max_accuracy_drop: 0.15, min_accuracy: 0.5 };

export type ModelPreprocessing = Pick<ModelJson, 'preset' | 'preprocess'>;

export interface ValidatorDeps {
  logger: Logger;
  clock: Clock;
  /** The compiled worker entry (dist/inference/worker.js), as the daemon uses. */
  workerUrl: URL;
}

export interface ValidationRequest {
  modelPath: string;
  labelsPath: string;
  modelJson: ModelPreprocessing;
  validationImages: ValidationImage[];
  /** A directory with images and `expected.tsv` (`file<TAB>index` per line). */
  goldenSet?: string | undefined;
  providers: ExecutionProvider[];
  deviceId?: number | undefined;
  thresholds: ValidationThresholds;
  /** Where the release's reference was computed (model.json `reference`), for the reasons. */
  reference?: string | undefined;
  /** The current model's median, measured single-threaded like the candidate's. */
  currentMedianMs?: number | undefined;
  /**
   * The current model, timed here after the candidate when `currentMedianMs` is absent; with
   * `labelsPath`, also run on the release's labelled images, whose accuracy the candidate must
   * not fall far below (same device, same kernels: no cross-CPU noise in that comparison).
   */
  baseline?: { modelPath: string; modelJson: ModelPreprocessing; labelsPath?: string | undefined } | undefined;
  /** Timed runs after warm-up; default 10. */
  timingRuns?: number | undefined;
  /** The whole validation; default 10 min (a TensorRT engine build alone can take minutes). */
  timeoutMs?: number | undefined;
}

export interface AgreementSet {
  name: 'release' | 'golden';
  /** Images whose top-1 was compared (the publisher's confident ones, or all of an old release). */
  matched: number;
  total: number;
  images: number;
  meanDistance: number | undefined;
  labelled: number;
  correct: number;
}

export interface ValidationReport {
  ok: boolean;
  provider: ExecutionProvider | undefined;
  /** Providers tried before `provider` and why they failed. */
  fallbacks: ProviderFailure[];
  inputOk: boolean;
  warmupMs: number | undefined;
  /** All sets together; each set is checked against the threshold on its own (see `sets`). */
  agreement: { matched: number; total: number };
  /** Images whose output held NaN or Infinity. */
  nonFinite: number;
  /** The serving model's truth accuracy on the release's labelled images, when it was measured. */
  baselineAccuracy: { correct: number; labelled: number } | undefined;
  sets: AgreementSet[];
  medianMs: number | undefined;
  currentMedianMs: number | undefined;
  reasons: string[];
}

// Below a few milliseconds the median says more about the worker's cache and scheduling state
// than about the model (seen on a 2-vCPU EPYC VM: the same 8-class model timed 0.15 ms in one
// worker and 2 ms in another of the same process, depending on what ran in it before), and such
// a difference is irrelevant at camera frame rates: a candidate within this of the current model
// passes whatever the factor. Real regressions (fp32 for int8, a bigger backbone) are tens of ms.
const LATENCY_SLACK_MS = 5;
const MAX_IMAGE_PROBLEMS = 3;

const ms = (x: number): string => (x < 10 ? x.toPrecision(2) : String(Math.round(x)));
const message = (err: unknown): string => ((err as Error).message ?? String(err)).split('\n')[0] ?? '';

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The release's validation images (model.json `validation`), inside the installed version dir. */
export function releaseValidationImages(dir: string, modelJson: Pick<ModelJson, 'validation'>): ValidationImage[] {
  return modelJson.validation.map((v) => ({ path: join(dir, v.file), expectedIndex: v.expected_index, top: v.top, truth: v.truth }));
}

class ValidationTimeout extends Error {
  override name = 'ValidationTimeout';
}

/** Runs a worker call (start or run) against the validation's deadline, keeping track of it. */
type Deadline = <T>(p: Promise<T>) => Promise<T>;

/** What the workers of one validation share: the deadline, the session settings, and the list to stop at the end. */
interface Session {
  guard: Deadline;
  deps: Pick<OpenModelDeps, 'logger' | 'workerUrl'>;
  load: Pick<OpenModelOptions, 'providers' | 'intraOpThreads' | 'deviceId'>;
  /** Workers of models that opened; openModel stops those of models that fail to open. */
  workers: InferenceWorker[];
}

// Terminating a worker thread while onnxruntime is inside a native call (session create or run)
// aborts the whole process ("terminate called after throwing an instance of 'Napi::Error'",
// seen with onnxruntime-node 1.30), which would take the serving model down with it. So a
// candidate worker is only ever stopped once every call made into it has returned; after a
// timeout that happens in the background, and validateModel returns at once.

/**
 * Median inference time (as the worker measures it: session.run alone, like the daemon's
 * latency stats) of `runs` zero-input runs of a warmed-up model; the input values do not change
 * the work of a classifier.
 */
async function medianRunMs(worker: InferenceWorker, dtype: InputDType, dims: number[], runs: number, guard: Deadline): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < Math.max(1, runs); i++) times.push((await guard(worker.run(zeroInput(dtype, dims), dims))).inferenceMs);
  return median(times);
}

export async function validateModel(deps: ValidatorDeps, req: ValidationRequest): Promise<ValidationReport> {
  const { logger, clock } = deps;
  const started = clock.monotonic();
  const report: ValidationReport = {
    ok: false,
    provider: undefined,
    fallbacks: [],
    inputOk: false,
    warmupMs: undefined,
    agreement: { matched: 0, total: 0 },
    nonFinite: 0,
    baselineAccuracy: undefined,
    sets: [],
    medianMs: undefined,
    currentMedianMs: req.currentMedianMs,
    reasons: [],
  };
  const timeoutMs = req.timeoutMs ?? 600_000;
  const stop = new AbortController();
  let timedOut = false;
  // Rejects every guarded call once the time is up; a worker's start() alone would wait forever for a load that hangs.
  const expired = clock.sleep(timeoutMs, stop.signal).then(() => {
    if (stop.signal.aborted) return new Promise<never>(() => undefined);
    timedOut = true;
    throw new ValidationTimeout(`validation did not finish within ${timeoutMs >= 10_000 ? `${Math.round(timeoutMs / 1000)} s` : `${timeoutMs} ms`}`);
  });
  expired.catch(() => undefined);
  const calls: Promise<unknown>[] = [];
  const guard: Deadline = (p) => {
    calls.push(p);
    return Promise.race([p, expired]);
  };
  const workers: InferenceWorker[] = [];
  const session: Session = {
    guard,
    deps: { logger: logger.child({ module: 'validator' }), workerUrl: deps.workerUrl },
    load: { providers: req.providers, intraOpThreads: 1, deviceId: req.deviceId ?? 0 },
    workers,
  };
  try {
    await candidateChecks(req, report, session);
    // Also after an agreement failure, so that the report says everything that is wrong.
    if (report.medianMs !== undefined) await latencyCheck(req, report, session, logger);
  } catch (err) {
    report.reasons.push(message(err));
  } finally {
    stop.abort();
    const stopped = Promise.allSettled(calls).then(() => Promise.all(workers.map((w) => w.stop(0))));
    if (timedOut) {
      void stopped.then(
        () => logger.info({ model: req.modelPath }, 'timed-out candidate worker stopped'),
        (err: unknown) => logger.error({ err, model: req.modelPath }, 'cannot stop the timed-out candidate worker'),
      );
    } else {
      await stopped;
    }
  }
  report.ok = report.reasons.length === 0;
  logger.info({ model: req.modelPath, ...report, ms: Math.round(clock.monotonic() - started) }, report.ok ? 'candidate model passed validation' : 'candidate model failed validation');
  return report;
}

const nonFiniteReason = (what: string): string => `non-finite outputs (NaN or Infinity) on ${what}: broken weights or preprocessing (a std of 0?)`;

/** The publisher's own accuracy on the labelled images, from its recorded top-1. */
function publisherAccuracy(images: readonly ValidationImage[], labels: readonly string[]): { correct: number; labelled: number } {
  const labelled = images.filter((i) => i.truth && i.truth.length > 0);
  return { labelled: labelled.length, correct: labelled.filter((i) => i.truth!.includes(labels[i.expectedIndex] ?? '')).length };
}

/**
 * The candidate through openModel (the daemon's own load, checks and warm-up), with each failure
 * worded for the report, which also learns the provider, its fallbacks and whether the input fit.
 */
async function openCandidate(req: ValidationRequest, report: ValidationReport, session: Session, spec: PreprocessSpec): Promise<OpenedModel<string[]>> {
  const worded: WorkerCallGuard = (call, step) =>
    session.guard(call).catch((err: unknown) => {
      throw new Error(step === 'load' ? `cannot load with ${req.providers.join(', ')}: ${message(err)}` : `warm-up run failed: ${message(err)}`);
    });
  let loaded: LoadedModel | undefined;
  const onLoaded = (model: LoadedModel): void => {
    loaded = model;
    report.provider = model.provider;
    report.fallbacks = model.failures;
  };
  const options = { ...session.load, modelPath: req.modelPath, labelsPath: req.labelsPath, preprocess: spec };
  const opened = await openModel({ ...session.deps, guard: worded, onLoaded }, options).catch((err: unknown) => {
    const inputMismatch = err instanceof ModelMismatchError && err.part === 'input';
    // Past the load, the input fit unless its own check failed.
    report.inputOk = loaded !== undefined && !inputMismatch;
    if (!loaded || !inputMismatch) throw err;
    const { preset } = req.modelJson;
    throw new Error(`input shape [${loaded.input.shape.join(',')}] (${loaded.input.type}) does not fit preset ${preset} (${spec.size}, ${spec.layout}): ${message(err)}`);
  });
  session.workers.push(opened.worker);
  report.inputOk = true;
  return opened;
}

/** Everything that needs only the candidate; pushes reasons, throws for the step that ends the run. */
async function candidateChecks(req: ValidationRequest, report: ValidationReport, session: Session): Promise<void> {
  const { preset, preprocess } = req.modelJson;
  let spec: PreprocessSpec;
  try {
    spec = resolvePreprocess(preset, preprocess);
  } catch (err) {
    throw new Error(`model.json preprocessing: ${message(err)}`);
  }
  const sets: { name: AgreementSet['name']; images: ValidationImage[] }[] = [{ name: 'release', images: req.validationImages }];
  if (req.goldenSet) sets.push({ name: 'golden', images: await readGoldenSet(req.goldenSet) });

  const { worker, labels, inputType: dtype, dims, warmUp } = await openCandidate(req, report, session, spec);
  report.warmupMs = warmUp.inferenceMs;
  if (!allFinite(warmUp.output)) throw new Error(nonFiniteReason('the warm-up run (an all-zero input)'));

  const gate: GateThresholds = { ...DEFAULT_GATE, ...req.thresholds };
  const prepare = createPreprocessor(spec, dtype);
  for (const set of sets) {
    const where = set.name === 'release' ? `the release validation images${req.reference ? ` (reference computed on ${req.reference})` : ''}` : `the golden set ${req.goldenSet}`;
    const problems: string[] = [];
    const judged: { ref: ValidationImage; probs: ArrayLike<number> }[] = [];
    let nonFinite = 0;
    for (const img of set.images) {
      let tensor: PreparedTensor;
      try {
        tensor = await prepare(await readFile(img.path));
      } catch (err) {
        problems.push(`${basename(img.path)}: ${message(err)}`);
        continue;
      }
      if (img.expectedIndex >= labels.length) problems.push(`${basename(img.path)}: expected index ${img.expectedIndex} is not one of the ${labels.length} classes`);
      // A failed run here is the model's failure, not the image's: it ends the validation.
      const { output } = await session.guard(worker.run(tensor.data, tensor.dims)).catch((err: unknown) => {
        throw new Error(`inference failed on ${img.path}: ${message(err)}`);
      });
      if (!allFinite(output)) {
        nonFinite++;
        continue;
      }
      judged.push({ ref: img, probs: toProbabilities(output, 'auto') });
    }
    report.nonFinite += nonFinite;
    if (nonFinite > 0) report.reasons.push(nonFiniteReason(`${nonFinite} of ${where}`));
    if (problems.length > 0) {
      const more = problems.length > MAX_IMAGE_PROBLEMS ? ` and ${problems.length - MAX_IMAGE_PROBLEMS} more` : '';
      report.reasons.push(`${problems.length} of ${where} unusable: ${problems.slice(0, MAX_IMAGE_PROBLEMS).join('; ')}${more}`);
    }
    const verdict: SetVerdict = judgeSet(judged, labels, gate, where);
    report.reasons.push(...verdict.reasons);
    const published = publisherAccuracy(set.images, labels);
    const drop = accuracyDrop(verdict, published, gate.max_accuracy_drop, "the publisher's on the same images");
    if (drop) report.reasons.push(`${drop} on ${where}`);
    report.sets.push({ name: set.name, matched: verdict.matched, total: verdict.compared, images: set.images.length, meanDistance: verdict.meanDistance, labelled: verdict.labelled, correct: verdict.correct });
    report.agreement.matched += verdict.matched;
    report.agreement.total += verdict.compared;
  }

  const runs = req.timingRuns ?? 10;
  report.medianMs = await medianRunMs(worker, dtype, dims, runs, session.guard);
  // Stopped before the baseline starts, so the two are never timed against each other (nothing is in flight here).
  await worker.stop(0);
}

async function latencyCheck(req: ValidationRequest, report: ValidationReport, session: Session, logger: Logger): Promise<void> {
  let current = req.currentMedianMs;
  if (current === undefined && req.baseline) {
    try {
      const spec = resolvePreprocess(req.baseline.modelJson.preset, req.baseline.modelJson.preprocess);
      // Warmed up as the candidate was; no labels: its output is not what is measured here.
      const { worker, inputType, dims } = await openModel({ ...session.deps, guard: session.guard }, { ...session.load, modelPath: req.baseline.modelPath, preprocess: spec });
      session.workers.push(worker);
      current = await medianRunMs(worker, inputType, dims, req.timingRuns ?? 10, session.guard);
      report.currentMedianMs = current;
      if (req.baseline.labelsPath) await baselineAccuracy(req, report, worker, createPreprocessor(spec, inputType), await loadLabels(req.baseline.labelsPath), session.guard);
    } catch (err) {
      if (err instanceof ValidationTimeout) throw err;
      // The current model is serving, so this is unexpected; without a baseline there is no latency check.
      logger.warn({ err, baseline: req.baseline.modelPath }, 'cannot time the current model; latency not compared');
    }
  }
  const { max_latency_factor: factor } = req.thresholds;
  const median = report.medianMs;
  if (current !== undefined && median !== undefined && median > current * factor + LATENCY_SLACK_MS) {
    report.reasons.push(`median ${ms(median)} ms is ${(median / current).toFixed(1)}x the current ${ms(current)} ms (max ${factor}x)`);
  }
}

/**
 * The serving model on the release's labelled images, by label name: a retrained candidate that
 * is clearly worse than what runs now is refused. Only when the candidate's labelled images all
 * gave usable outputs (otherwise other reasons already refuse it).
 */
async function baselineAccuracy(
  req: ValidationRequest,
  report: ValidationReport,
  worker: InferenceWorker,
  prepare: (bytes: Buffer) => Promise<PreparedTensor>,
  labels: string[],
  guard: Deadline,
): Promise<void> {
  const candidate = report.sets.find((s) => s.name === 'release');
  const labelled = req.validationImages.filter((i) => i.truth && i.truth.length > 0);
  if (!candidate || candidate.labelled === 0 || candidate.labelled !== labelled.length) return;
  let correct = 0;
  for (const img of labelled) {
    const tensor = await prepare(await readFile(img.path));
    const { output } = await guard(worker.run(tensor.data, tensor.dims));
    if (img.truth!.includes(labels[argmax(output)] ?? '')) correct++;
  }
  report.baselineAccuracy = { correct, labelled: labelled.length };
  const gate: GateThresholds = { ...DEFAULT_GATE, ...req.thresholds };
  const drop = accuracyDrop(candidate, report.baselineAccuracy, gate.max_accuracy_drop, 'the serving model on the same images');
  if (drop) report.reasons.push(drop);
}
