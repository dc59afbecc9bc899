import { readFile } from 'node:fs/promises';
import { ConfigError } from '../../config/load.js';
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import { ModelStore } from '../../updates/model-store.js';
import { Downloader } from '../../updates/downloader.js';
import { Updater } from '../../updates/updater.js';
import type { ModelUpdatePayload } from '../../mqtt/payloads.js';
import type { ModelManager } from '../model-manager.js';
import { StartAborted } from '../lifecycle.js';
import { validateInChildProcess } from '../validation-process.js';
import type { PartContext } from './context.js';

/** The installed releases (updates.manifest_url); undefined when updates are not configured. */
export function modelStore(ctx: Pick<PartContext, 'logger' | 'clock' | 'config'>): ModelStore | undefined {
  const { config } = ctx;
  if (!config.updates.manifest_url) return undefined;
  return new ModelStore({ logger: ctx.logger.child({ module: 'model-store' }), clock: ctx.clock, config: { ...config.updates, state_dir: config.updates.state_dir ?? config.state_dir } });
}

export interface UpdaterPartDeps extends Pick<PartContext, 'logger' | 'clock' | 'config' | 'version' | 'bus'> {
  manifestUrl: string;
  store: ModelStore;
  models: Pick<ModelManager, 'swap' | 'restoreConfigured' | 'serving'>;
  workerUrl: URL;
  fetch: typeof fetch;
}

/**
 * The updater and its store, before the model: at start it rolls back a release that
 * crash-loops, and installs a first release when there is no model at all. Its polling is the
 * `updates` part (pollingPart), which starts last and stops first.
 */
export async function updaterPart(deps: UpdaterPartDeps) {
  const { config, logger, clock, store, models, bus } = deps;
  // Reports made while the model starts, before MQTT is up: the mqtt part retains the latest of
  // those when it starts, and hears the later ones on the bus.
  let latest: ModelUpdatePayload | undefined;
  const updater = new Updater({
    logger: logger.child({ module: 'updates' }),
    clock,
    config: { ...config.updates, manifest_url: deps.manifestUrl },
    deviceId: config.device_id,
    daemonVersion: deps.version,
    fetch: deps.fetch,
    publicKeys: await Promise.all(config.updates.public_keys.map((k, i) => readKey(k, i))),
    providers: config.model.execution_providers,
    store,
    downloader: new Downloader({ logger, clock, fetch: deps.fetch, config: config.updates.download }),
    // In a child process (validation-process.ts): a candidate that runs out of memory, crashes
    // or hangs costs that process, not the daemon. Its entry sits in dist/ next to the worker's.
    validate: (req, signal) =>
      validateInChildProcess(
        { logger: logger.child({ module: 'validator' }), childUrl: new URL('../daemon/validation-child.js', deps.workerUrl), workerUrl: deps.workerUrl, logLevel: config.log.level },
        { ...req, timeoutMs: config.updates.validation.timeout_s * 1000 },
        signal,
      ),
    serving: () => models.serving(),
    activate: (installed) => models.swap(installed),
    restoreConfigured: () => models.restoreConfigured(),
    report: (p) => {
      latest = p;
      bus.emit('modelReported', p);
    },
    hasFallbackModel: Boolean(config.model.path),
  });
  // A model on probation that fails on live frames is rolled back.
  bus.on('inferenceFailed', updater, () => {
    if (store.snapshot().probation) void updater.inferenceError().catch(() => undefined);
  });
  /** Aborted by abort(): a start still waiting for a first model gives up. */
  const starting = new AbortController();
  let storeStarted = false;
  return {
    name: 'updater',
    stopOnFailedStart: true,
    start: async () => {
      await store.start();
      storeStarted = true;
      if (store.snapshot().probation) {
        // A crash loop is seen across restarts: each start during probation counts.
        const p = await store.recordRestart();
        if (p.trip) await updater.rollback(p.trip, false);
      }
      if (!(await store.current()) && !config.model.path) await firstInstall(updater, store, { logger, clock, signal: starting.signal });
      if (starting.signal.aborted) throw new StartAborted('stopped while starting');
    },
    stop: async () => {
      bus.removeListeners(updater);
      await updater.stop();
      if (storeStarted) await store.stop();
    },
    /** A shutdown while waiting for a first model, downloading or validating it. */
    abort: (): void => {
      starting.abort();
      void updater.stop();
    },
    updater,
    reported: (): ModelUpdatePayload | undefined => latest,
  };
}

/** Polling for model updates, once everything a swapped-in model touches is up. */
export function pollingPart(updater: Pick<Updater, 'start' | 'stop'>) {
  // Early in the shutdown: a download or validation in progress is aborted (its process killed).
  return { name: 'updates', start: () => updater.start(), stop: () => updater.stop() };
}

/** No model anywhere: nothing can run until a release is installed, so keep trying. */
async function firstInstall(updater: Updater, store: ModelStore, deps: { logger: Logger; clock: Clock; signal: AbortSignal }): Promise<void> {
  const { logger, clock, signal } = deps;
  for (let attempt = 0; !signal.aborted && !(await store.current()); attempt++) {
    const outcome = await updater.checkNow();
    if (signal.aborted || (await store.current())) break;
    logger.warn({ outcome }, 'no model installed yet; retrying');
    await clock.sleep(Math.min(60_000, 2_000 * 2 ** attempt), signal);
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
