import { readFile } from 'node:fs/promises';
import type { Logger } from '../core/logger.js';
import type { Clock } from '../core/clock.js';
import type { Config, PreprocessSpec } from '../config/schema.js';
import { ConfigError } from '../config/load.js';
import { Classifier, type ActiveModel } from '../inference/classifier.js';
import { resolvePreprocess } from '../vision/presets.js';
import { ModelJsonSchema } from '../updates/manifest.js';
import { ModelStore, type InstalledModel } from '../updates/model-store.js';
import { Downloader } from '../updates/downloader.js';
import { Updater } from '../updates/updater.js';
import { validateInChildProcess } from './validation-process.js';
import { StartAborted } from './lifecycle.js';
import type { ModelUpdatePayload } from '../mqtt/payloads.js';

export interface ModelManagerDeps {
  logger: Logger;
  clock: Clock;
  config: Config;
  version: string;
  workerUrl: URL;
  fetch: typeof fetch;
  /** Retained B/D/model (set once MQTT is up; reports before that are replayed). */
  report: (payload: ModelUpdatePayload) => void;
}

interface ModelSpec {
  path: string;
  labels: string;
  name?: string | undefined;
  version?: string | undefined;
  preprocess: PreprocessSpec;
}

/** Which model serves, and how it changes: the configured file, or the one updates installed. */
export class ModelManager {
  private classifier: Classifier | undefined;
  private spec: ModelSpec | undefined;
  private store: ModelStore | undefined;
  private updater: Updater | undefined;
  /** Where the pipeline's classifier is switched (set by the composition root). */
  private swapIn: ((next: Classifier) => Promise<void>) | undefined;
  /** Aborted by abort(): a start still waiting for a first model gives up. */
  private readonly starting = new AbortController();

  constructor(private readonly deps: ModelManagerDeps) {}

  get current(): Classifier | undefined {
    return this.classifier;
  }

  get model(): ActiveModel | undefined {
    return this.classifier?.model;
  }

  get updates(): Updater | undefined {
    return this.updater;
  }

  /** Loads the serving model: the installed release if there is one (installing one first if there is none). */
  async start(): Promise<void> {
    const { config, logger } = this.deps;
    if (config.updates.manifest_url) {
      const store = new ModelStore({ logger: logger.child({ module: 'model-store' }), clock: this.deps.clock, config: { ...config.updates, state_dir: config.updates.state_dir ?? config.state_dir } });
      await store.start();
      this.store = store;
      this.updater = await this.createUpdater(store, config.updates.manifest_url);
      if (store.snapshot().probation) {
        // A crash loop is seen across restarts: each start during probation counts.
        const p = await store.recordRestart();
        if (p.trip) await this.updater.rollback(p.trip, false);
      }
      if (!(await store.current()) && !config.model.path) await this.firstInstall(this.updater, store);
    }
    if (this.starting.signal.aborted) throw new StartAborted('stopped while starting');
    const installed = await this.store?.current();
    this.spec = installed ? this.specOf(installed) : this.configSpec();
    this.classifier = await this.load(this.spec);
  }

  /** Starts polling for updates (after MQTT and the pipeline are up). */
  async startUpdates(swapIn: (next: Classifier) => Promise<void>): Promise<void> {
    this.swapIn = swapIn;
    await this.updater?.start();
  }

  /**
   * Stops a start() in progress (a shutdown while waiting for a first model, downloading or
   * validating it): start() then rejects with StartAborted; stop() cleans up.
   */
  abort(): void {
    this.starting.abort();
    void this.updater?.stop();
  }

  /** Stops update checks, aborting one in progress (its download or validation process). */
  async stopUpdates(): Promise<void> {
    await this.updater?.stop();
  }

  async stop(): Promise<void> {
    await this.updater?.stop();
    await this.classifier?.stop();
    this.classifier = undefined;
    await this.store?.stop();
  }

  /** Inference failed or the worker crashed: counts against a model on probation. */
  inferenceError(): void {
    if (this.store?.snapshot().probation) void this.updater?.inferenceError().catch(() => undefined);
  }

  private async createUpdater(store: ModelStore, manifestUrl: string): Promise<Updater> {
    const { config, logger, clock } = this.deps;
    return new Updater({
      logger: logger.child({ module: 'updates' }),
      clock,
      config: { ...config.updates, manifest_url: manifestUrl },
      deviceId: config.device_id,
      daemonVersion: this.deps.version,
      fetch: this.deps.fetch,
      publicKeys: await Promise.all(config.updates.public_keys.map((k, i) => readKey(k, i))),
      providers: config.model.execution_providers,
      store,
      downloader: new Downloader({ logger, clock, fetch: this.deps.fetch, config: config.updates.download }),
      // In a child process (validation-process.ts): a candidate that runs out of memory, crashes
      // or hangs costs that process, not the daemon. Its entry sits in dist/ next to the worker's.
      validate: (req, signal) =>
        validateInChildProcess(
          { logger: logger.child({ module: 'validator' }), childUrl: new URL('../daemon/validation-child.js', this.deps.workerUrl), workerUrl: this.deps.workerUrl, logLevel: config.log.level },
          { ...req, timeoutMs: config.updates.validation.timeout_s * 1000 },
          signal,
        ),
      serving: () => (this.spec ? { version: this.classifier?.model?.version, modelPath: this.spec.path, labelsPath: this.spec.labels, modelJson: { preset: config.model.preset, preprocess: this.spec.preprocess } } : undefined),
      activate: (installed) => this.swap(installed),
      restoreConfigured: async () => {
        if (config.model.path) return this.swapSpec(this.configSpec(), 'configured model swapped back in');
        // Nothing to go back to: it serves until the next release, and is not loaded again after a restart.
        logger.error('rolled back to no model, and none is configured: the rolled-back model serves until a new release is installed');
      },
      report: (p) => this.deps.report(p),
      hasFallbackModel: Boolean(config.model.path),
    });
  }

  /** No model anywhere: nothing can run until a release is installed, so keep trying. */
  private async firstInstall(updater: Updater, store: ModelStore): Promise<void> {
    const { logger, clock } = this.deps;
    const signal = this.starting.signal;
    for (let attempt = 0; !signal.aborted && !(await store.current()); attempt++) {
      const outcome = await updater.checkNow();
      if (signal.aborted || (await store.current())) break;
      logger.warn({ outcome }, 'no model installed yet; retrying');
      await clock.sleep(Math.min(60_000, 2_000 * 2 ** attempt), signal);
    }
  }

  /** Loads `installed` in a new worker, switches the pipeline to it between two frames, disposes the old one. */
  private swap(installed: InstalledModel): Promise<void> {
    return this.swapSpec(this.specOf(installed), 'model swapped in', installed.version);
  }

  private async swapSpec(spec: ModelSpec, msg: string, version?: string): Promise<void> {
    const next = await this.load(spec);
    const old = this.classifier;
    await this.swapIn?.(next);
    this.classifier = next;
    this.spec = spec;
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
    classifier.onWorkerCrash(() => this.inferenceError());
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

/** A trusted key: PEM text in the config, or a path to a PEM file. */
async function readKey(entry: string, i: number): Promise<string> {
  if (entry.includes('BEGIN PUBLIC KEY')) return entry;
  try {
    return await readFile(entry, 'utf8');
  } catch (err) {
    throw new ConfigError('config', [`updates.public_keys[${i}]: cannot read ${entry}: ${(err as Error).message}`]);
  }
}
