import type { Logger } from '../core/logger.js';
import type { Clock } from '../core/clock.js';
import type { Config, PreprocessSpec } from '../config/schema.js';
import { ConfigError } from '../config/load.js';
import { Classifier, type ActiveModel } from '../inference/classifier.js';
import { resolvePreprocess } from '../vision/presets.js';
import { ModelJsonSchema } from '../updates/manifest.js';
import type { InstalledModel, ModelStore } from '../updates/model-store.js';
import type { UpdaterDeps } from '../updates/updater.js';
import type { Pipeline } from './pipeline.js';

export interface ModelManagerDeps {
  logger: Logger;
  clock: Clock;
  config: Config;
  workerUrl: URL;
  /** Installed releases (updates.manifest_url); absent: the configured model serves. */
  store?: Pick<ModelStore, 'current'> | undefined;
  /** A frame failed inference or the worker crashed (a model on probation counts these). */
  onInferenceError: () => void;
  /** Another model serves now (availability carries its version). */
  onSwapped: (version: string | undefined) => void;
}

interface ModelSpec {
  path: string;
  labels: string;
  name?: string | undefined;
  version?: string | undefined;
  preprocess: PreprocessSpec;
}

/** Which model serves: the configured file, or the release the store has installed. The updater swaps others in. */
export class ModelManager {
  private classifier: Classifier | undefined;
  private spec: ModelSpec | undefined;
  /** Where a swapped-in model serves (the frame path's pipeline, once it is made). */
  private target: Pick<Pipeline, 'setClassifier'> | undefined;

  constructor(private readonly deps: ModelManagerDeps) {}

  get current(): Classifier | undefined {
    return this.classifier;
  }

  get model(): ActiveModel | undefined {
    return this.classifier?.model;
  }

  /** Loads the serving model: the installed release if there is one, else the configured file. */
  async start(): Promise<void> {
    // A first install swapped its release in already (the updater part runs before this).
    if (this.classifier) return;
    const installed = await this.deps.store?.current();
    this.spec = installed ? this.specOf(installed) : this.configSpec();
    this.classifier = await this.load(this.spec);
  }

  /** From now on a swapped-in model is switched in on `target` between two frames. */
  serveOn(target: Pick<Pipeline, 'setClassifier'>): void {
    this.target = target;
  }

  async stop(): Promise<void> {
    await this.classifier?.stop();
    this.classifier = undefined;
  }

  /** Loads `installed` in a new worker, switches the pipeline to it between two frames, disposes the old one. */
  swap(installed: InstalledModel): Promise<void> {
    return this.swapSpec(this.specOf(installed), 'model swapped in', installed.version);
  }

  /** The configured model (model.path) back in: a rollback to no installed version. */
  async restoreConfigured(): Promise<void> {
    if (this.deps.config.model.path) return this.swapSpec(this.configSpec(), 'configured model swapped back in');
    // Nothing to go back to: it serves until the next release, and is not loaded again after a restart.
    this.deps.logger.error('rolled back to no model, and none is configured: the rolled-back model serves until a new release is installed');
  }

  /** The model serving now, as the updater's baseline for the latency check. */
  serving(): ReturnType<UpdaterDeps['serving']> {
    const { config } = this.deps;
    return this.spec ? { version: this.classifier?.model?.version, modelPath: this.spec.path, labelsPath: this.spec.labels, modelJson: { preset: config.model.preset, preprocess: this.spec.preprocess } } : undefined;
  }

  private async swapSpec(spec: ModelSpec, msg: string, version?: string): Promise<void> {
    const next = await this.load(spec);
    const old = this.classifier;
    await this.target?.setClassifier(next);
    this.classifier = next;
    this.spec = spec;
    this.deps.onSwapped(next.model?.version);
    await old?.stop();
    this.deps.logger.info({ version: version ?? next.model?.version }, msg);
  }

  private async load(spec: ModelSpec): Promise<Classifier> {
    const { config, logger, clock, workerUrl } = this.deps;
    const m = config.model;
    const classifier = new Classifier({
      logger: logger.child({ module: 'classifier' }),
      clock,
      workerUrl,
      config: {
        modelPath: spec.path,
        labelsPath: spec.labels,
        name: spec.name,
        version: spec.version,
        preprocess: spec.preprocess,
        output: m.output,
        providers: m.execution_providers,
        intraOpThreads: m.intra_op_threads,
        allowSpinning: m.intra_op_spinning,
        deviceId: m.device_id,
      },
    });
    classifier.onWorkerCrash(() => this.deps.onInferenceError());
    await classifier.start();
    return classifier;
  }

  private configSpec(): ModelSpec {
    const m = this.deps.config.model;
    if (!m.path || !m.labels) throw new ConfigError('config', ['model.path: no model configured and none installed']);
    return { path: m.path, labels: m.labels, name: m.name, version: m.version, preprocess: resolvePreprocess(m.preset, m.preprocess) };
  }

  private specOf(installed: InstalledModel): ModelSpec {
    const parsed = ModelJsonSchema.safeParse(installed.modelJson);
    if (!parsed.success) throw new Error(`installed model ${installed.version}: model.json is invalid`);
    const name = this.deps.config.model.name ?? 'model';
    return { path: installed.modelPath, labels: installed.labelsPath, name, version: installed.version, preprocess: resolvePreprocess(parsed.data.preset, parsed.data.preprocess) };
  }
}
