import type { connect as mqttConnect } from 'mqtt';
import type { Logger } from '../core/logger.js';
import type { Clock } from '../core/clock.js';
import { EventBus } from '../core/event-bus.js';
import type { Config } from '../config/schema.js';
import type { ActiveModel } from '../inference/classifier.js';
import { resolvePreprocess } from '../vision/presets.js';
import type { ConfigReportPayload, PredictionPayload } from '../mqtt/payloads.js';
import type { EmbeddedBroker } from '../mqtt/embedded-broker.js';
import type { SdNotifier } from '../service/sd-notify.js';
import type { ServiceWatchdog } from '../service/watchdog.js';
import type { DaemonView } from '../service/http/daemon-view.js';
import { updatesFetch } from '../updates/http-client.js';
import type { ModelManager } from './model-manager.js';
import type { Cameras } from './cameras.js';
import type { ConfigReloader, ConfigSource } from './config-reloader.js';
import type { DaemonEvents } from './events.js';
import { Lifecycle, StartAborted, type Part } from './lifecycle.js';
import type { Pipeline } from './pipeline.js';
import { framePath, watchRules } from './frame-path.js';
import { childLogger, type PartContext } from './parts/context.js';
import { sdNotifyPart } from './parts/sd-notify.js';
import { modelPart } from './parts/model.js';
import { settingsPart } from './parts/settings.js';
import { brokerPart } from './parts/broker.js';
import { mqttPart } from './parts/mqtt.js';
import { httpPart } from './parts/http.js';
import { camerasPart, tmpDirPart } from './parts/cameras.js';
import { homeAssistantPart } from './parts/homeassistant.js';
import { commandsPart } from './parts/commands.js';
import { statsPart } from './parts/stats.js';
import { modelStore, pollingPart, updaterPart } from './parts/updater.js';
import { watchdogPart } from './parts/watchdog.js';
import { reloadPart } from './parts/reload.js';

export interface DaemonDeps {
  logger: Logger;
  clock: Clock;
  config: Config;
  version: string;
  workerUrl: URL;
  /** Parent of the daemon's scratch directory (webcam shots). */
  tmpRoot: string;
  /** For credentials referenced by name (password_env) and systemd's NOTIFY_SOCKET / WATCHDOG_USEC / WATCHDOG_PID. */
  env: NodeJS.ProcessEnv;
  connectMqtt?: typeof mqttConnect;
  /** For over-the-air updates; the pinned undici of src/updates/http-client.ts when absent (never the global fetch). */
  fetch?: typeof fetch;
  /** Called with every published prediction (the demo prints them). */
  onPrediction?: (payload: PredictionPayload) => void;
  /** Sets the level of `logger` and all its children (a reload's log.level); the root's only when absent. */
  setLogLevel?: (level: Config['log']['level']) => void;
}

/** The parts started so far: what the daemon's getters, stop() and the HTTP view read (undefined until started). */
interface Started {
  notifier?: SdNotifier;
  updater?: Awaited<ReturnType<typeof updaterPart>>;
  models?: ModelManager;
  broker?: EmbeddedBroker;
  cameras?: Cameras;
  watchdog?: ServiceWatchdog;
  reloader?: ConfigReloader;
}

/**
 * The composition root: each part is built by its factory (./parts/, the frame path in
 * ./frame-path.ts) from one deps object, started in the order below and stopped in reverse,
 * each stop in its own try/catch (Lifecycle). Parts that must hear about each other do so on
 * the bus made here.
 */
export class Daemon {
  private readonly lifecycle: Lifecycle;
  private readonly started: Started = {};
  /** The start in progress, if any: a stop() during it aborts it first. */
  private starting: Promise<void> | undefined;

  constructor(private readonly deps: DaemonDeps) {
    this.lifecycle = new Lifecycle(deps.logger.child({ module: 'lifecycle' }));
  }

  get model(): ActiveModel | undefined {
    return this.started.models?.model;
  }

  get brokerUrl(): string | undefined {
    return this.started.broker?.url;
  }

  /**
   * Starts every part in order. A stop() while this runs (a SIGTERM while waiting for a first
   * model, say) aborts it: it rejects with StartAborted, and stop() stops what had started.
   */
  start(): Promise<void> {
    const run = this.startParts();
    this.starting = run;
    return run.finally(() => (this.starting = undefined));
  }

  /** The start order, one part a line; each line's comment in its factory says why it is there. */
  private async startParts(): Promise<void> {
    const { config, logger } = this.deps;
    const ctx: PartContext = { logger, clock: this.deps.clock, config, version: this.deps.version, env: this.deps.env, bus: new EventBus<DaemonEvents>({ logger: childLogger({ logger }, 'events') }) };
    const s = this.started;
    const run = <P extends Part>(part: P): Promise<P> => this.lifecycle.start(part);

    const { notifier } = await run(sdNotifyPart(ctx));
    s.notifier = notifier;
    notifier.notify({ STATUS: 'starting: loading the model' });
    const manifestUrl = config.updates.manifest_url;
    const store = manifestUrl ? modelStore(ctx) : undefined;
    const model = modelPart({ ...ctx, workerUrl: this.deps.workerUrl, store });
    const updater = manifestUrl && store ? (s.updater = await updaterPart({ ...ctx, manifestUrl, store, models: model.models, workerUrl: this.deps.workerUrl, fetch: this.deps.fetch ?? updatesFetch })) : undefined;
    if (updater) await run(updater);
    const { models } = await run(model);
    s.models = models;
    const classifier = models.current!;
    const watcher = watchRules(config.watch, classifier.labelList);
    const { settings } = await run(settingsPart(ctx));
    const broker = config.mqtt.url === 'embedded' ? (s.broker = (await run(brokerPart(ctx))).broker) : undefined;
    const cameraIds = (): string[] => s.cameras?.ids() ?? config.cameras.map((c) => c.id);
    const { mqtt } = await run(mqttPart({ ...ctx, broker, models, modelReported: updater?.reported ?? (() => undefined), settings, cameraIds, connect: this.deps.connectMqtt }));
    const { pipeline, router, inference } = await run(framePath({ ...ctx, models, classifier, watcher, settings, mqtt, onPrediction: this.deps.onPrediction }));
    if (config.http.enabled) await run(httpPart({ ...ctx, view: this.view(pipeline, mqtt) }));
    const tmp = await run(tmpDirPart(this.deps));
    const { cameras } = await run(camerasPart({ ...ctx, tmpDir: tmp.dir(), modelInput: resolvePreprocess(config.model.preset, config.model.preprocess), pipeline, mqtt }));
    s.cameras = cameras;
    const ha = config.homeassistant.enabled ? (await run(homeAssistantPart({ ...ctx, mqtt, cameras, watcher }))).ha : undefined;
    if (config.commands.enabled) await run(commandsPart({ ...ctx, cameras, router, settings, mqtt, updater: updater?.updater }));
    const { stats } = await run(statsPart({ ...ctx, cameras, pipeline, inference, mqtt, models }));
    if (updater) await run(pollingPart(updater.updater));
    s.watchdog = (await run(watchdogPart({ ...ctx, notifier, pipeline, cameras, models, mqtt }))).watchdog;
    const resyncDiscovery = ha ? () => ha.resync() : undefined;
    s.reloader = (await run(reloadPart({ ...ctx, models, classifier, setLogLevel: this.deps.setLogLevel, settings, watcher, cameras, stats, mqtt, resyncDiscovery }))).reloader;
    logger.info({ device: config.device_id, cameras: config.cameras.map((c) => c.id) }, 'daemon started');
  }

  /** What the HTTP side reads; the parts started after it (cameras, watchdog) appear once they are up. */
  private view(pipeline: Pick<Pipeline, 'counters'>, mqtt: ReturnType<DaemonView['mqtt']>): DaemonView {
    const s = this.started;
    return {
      model: () => s.models?.model,
      cameras: () => s.cameras,
      counters: () => pipeline.counters(),
      mqtt: () => mqtt,
      updates: () => s.updater?.updater.payload,
      stalled: () => s.watchdog?.stalled,
      failing: () => s.watchdog?.failing,
    };
  }

  /** The configuration in force: the start-up one with the changes reloads applied. */
  get activeConfig(): Config {
    return this.started.reloader?.active ?? this.deps.config;
  }

  /**
   * Re-reads the configuration and applies what can change at runtime (see ConfigReloader).
   * Resolves with the report, or undefined when there is nothing to reload into (not started,
   * or shutting down). Never rejects.
   */
  async reload(from: ConfigSource): Promise<ConfigReportPayload | undefined> {
    const reloader = this.started.reloader;
    if (!reloader) {
      this.deps.logger.info('config reload ignored: the daemon is not running');
      return undefined;
    }
    return reloader.reload(from);
  }

  async stop(): Promise<void> {
    // Before anything stops, so systemd knows the exit that follows is wanted.
    this.started.notifier?.notify({ STOPPING: '1', STATUS: 'stopping' });
    const starting = this.starting;
    if (starting) {
      this.lifecycle.abort();
      this.started.updater?.abort();
      await starting.catch((err: unknown) => {
        if (!(err instanceof StartAborted)) this.deps.logger.debug({ err: (err as Error).message }, 'start failed while stopping');
      });
    }
    await this.lifecycle.stopAll();
    this.deps.logger.info('daemon stopped');
  }
}
