import { join } from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import type { connect as mqttConnect } from 'mqtt';
import type { Logger } from '../core/logger.js';
import type { Clock } from '../core/clock.js';
import type { Config } from '../config/schema.js';
import { ConfigError } from '../config/load.js';
import { RuntimeSettings } from '../config/runtime-settings.js';
import type { ActiveModel } from '../inference/classifier.js';
import { ModelManager } from './model-manager.js';
import { resolvePreprocess } from '../vision/presets.js';
import { EmbeddedBroker } from '../mqtt/embedded-broker.js';
import { MqttPublisher } from '../mqtt/mqtt-publisher.js';
import { HomeAssistant } from '../mqtt/home-assistant.js';
import { CommandServer } from '../mqtt/commands/command-server.js';
import { CommandAuth, logCommandAccess } from '../mqtt/commands/command-auth.js';
import { LabelWatcher, resolveRules } from '../rules/label-watch.js';
import type { ModelRef, ModelUpdatePayload, PredictionPayload } from '../mqtt/payloads.js';
import { LatencyWindow } from '../core/latency-window.js';
import { Pipeline } from './pipeline.js';
import { Cameras } from './cameras.js';
import { PredictionRouter } from './prediction-router.js';
import { daemonCommands } from './daemon-commands.js';
import { StatsTicker } from './stats-ticker.js';
import { Lifecycle, StartAborted } from './lifecycle.js';
import { StatsSchedule } from './stats-schedule.js';
import { ConfigReloader, type ConfigSource } from './config-reloader.js';
import { EventBus } from '../core/event-bus.js';
import type { DaemonEvents } from './events.js';
import { forgetRemovedCameras } from './camera-owners.js';
import type { ConfigReportPayload } from '../mqtt/payloads.js';
import { OpsHttp, PREVIEW_TOP } from '../service/http/ops-http.js';
import { SdNotifier } from '../service/sd-notify.js';
import { ServiceWatchdog } from '../service/watchdog.js';
import { updatesFetch } from '../updates/http-client.js';

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

/**
 * The composition root: sources -> pipeline (preprocessing) -> inference worker -> MQTT, with
 * Home Assistant discovery, commands and stats beside them. Parts start in dependency order
 * and stop in reverse, each stop in its own try/catch (Lifecycle).
 */
export class Daemon {
  private readonly lifecycle: Lifecycle;
  private models: ModelManager | undefined;
  private mqtt: MqttPublisher | undefined;
  private modelReport: ModelUpdatePayload | undefined;
  private cameras: Cameras | undefined;
  private broker: EmbeddedBroker | undefined;
  private notifier: SdNotifier | undefined;
  private watchdog: ServiceWatchdog | undefined;
  private reloader: ConfigReloader | undefined;
  /** The start in progress, if any: a stop() during it aborts it first. */
  private starting: Promise<void> | undefined;

  constructor(private readonly deps: DaemonDeps) {
    this.lifecycle = new Lifecycle(deps.logger.child({ module: 'lifecycle' }));
  }

  get model(): ActiveModel | undefined {
    return this.models?.model;
  }

  get brokerUrl(): string | undefined {
    return this.broker?.url;
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

  private async startParts(): Promise<void> {
    const { config, logger, clock } = this.deps;
    const child = (module: string): Logger => logger.child({ module });
    // systemd (Type=notify): first, so `systemctl status` says what a long start is doing.
    const notifier = new SdNotifier({ env: this.deps.env, logger: child('sd-notify'), pid: process.pid });
    this.notifier = notifier;
    await this.lifecycle.start({ name: 'sd-notify', start: () => notifier.start(), stop: () => notifier.stop() });
    notifier.notify({ STATUS: 'starting: loading the model' });
    const models = new ModelManager({
      logger,
      clock,
      config,
      version: this.deps.version,
      workerUrl: this.deps.workerUrl,
      fetch: this.deps.fetch ?? updatesFetch,
      report: (p) => {
        this.modelReport = p;
        this.mqtt?.retain(this.mqtt.topics.model, JSON.stringify(p));
      },
    });
    this.models = models;
    // The model first: a broken model is a startup error, before anything is announced. Stopped
    // even when its start fails or is aborted (a first install holds an updater and a store).
    this.lifecycle.adopt({ name: 'model', start: () => Promise.resolve(), stop: () => models.stop() });
    await models.start();
    const classifier = models.current!;
    const spec = resolvePreprocess(config.model.preset, config.model.preprocess);
    const watcher = this.watcher(classifier.labelList);

    const settings = new RuntimeSettings({ logger: child('settings'), base: config.publish, file: join(config.state_dir, 'runtime.json') });
    await this.lifecycle.start({ name: 'settings', start: () => settings.start(), stop: () => settings.stop() });

    let url = config.mqtt.url;
    if (url === 'embedded') {
      const owner = { baseTopic: config.mqtt.base_topic, deviceId: config.device_id, discoveryPrefix: config.homeassistant.discovery_prefix };
      const broker = new EmbeddedBroker({ logger: child('broker'), config: config.mqtt.embedded, owner });
      this.broker = broker;
      await this.lifecycle.start({ name: 'broker', start: () => broker.start(), stop: () => broker.stop() });
      url = broker.url;
    }

    const mqtt = new MqttPublisher({
      logger: child('mqtt'),
      clock,
      // The embedded broker knows the daemon's client by these (not mqtt.username: that is for an external broker).
      config: this.broker ? { ...config.mqtt, ...this.broker.credentials, password_file: undefined } : config.mqtt,
      deviceId: config.device_id,
      url,
      embedded: this.broker !== undefined,
      version: this.deps.version,
      statusDetails: () => ({ model: this.modelRef() ?? null, execution_provider: models.model?.provider ?? null, cameras: this.cameras?.ids() ?? config.cameras.map((c) => c.id) }),
      predictionExpiry: () => settings.get().expiry,
      stateDir: config.state_dir,
      ...(this.deps.connectMqtt ? { connect: this.deps.connectMqtt } : {}),
    });
    await this.lifecycle.start({ name: 'mqtt', start: () => mqtt.start(), stop: () => mqtt.stop() });
    this.mqtt = mqtt;
    if (this.modelReport) mqtt.retain(mqtt.topics.model, JSON.stringify(this.modelReport));

    const router = new PredictionRouter({
      clock,
      deviceId: config.device_id,
      settings: () => settings.get(),
      watcher,
      model: () => this.modelRef(),
      publishPrediction: (p) => {
        mqtt.publishPrediction(p);
        this.deps.onPrediction?.(p);
      },
      publishLabel: (e) => mqtt.publishLabelEvent(e),
    });
    const inference = new LatencyWindow();
    const pipeline = new Pipeline({
      logger: child('pipeline'),
      clock,
      classifier,
      // The preview shows top-5 bars; the router trims MQTT payloads back to top_k.
      topK: () => Math.max(settings.get().top_k, config.http.enabled && config.http.preview ? PREVIEW_TOP : 0),
      watch: () => watcher.indices,
      publish: (r) => {
        inference.add(r.latency.inference);
        router.handle(r);
        ops?.observe(r);
      },
      onInferenceError: () => models.inferenceError(),
    });
    await this.lifecycle.start({
      name: 'pipeline',
      start: () => pipeline.start(),
      stop: async () => {
        await pipeline.stop();
        router.cancelWaiters();
      },
    });

    // Before the cameras: every frame is counted, and /readyz says "no camera online" until one is.
    const ops = config.http.enabled
      ? new OpsHttp({
          logger: child('http'),
          clock,
          config: config.http,
          device: config.device_id,
          version: this.deps.version,
          view: {
            model: () => models.model,
            cameras: () => this.cameras,
            counters: () => pipeline.counters(),
            mqtt: () => mqtt,
            updates: () => models.updates?.payload,
            stalled: () => this.watchdog?.stalled,
            failing: () => this.watchdog?.failing,
          },
        })
      : undefined;
    if (ops) await this.lifecycle.start({ name: 'http', start: () => ops.start(), stop: () => ops.stop() });

    const events = new EventBus<DaemonEvents>({ logger: child('events') });
    forgetRemovedCameras(events, { pipeline, router, watcher, mqtt });
    const tmpDir = await mkdtemp(join(this.deps.tmpRoot, 'edge-classifier-'));
    this.lifecycle.adopt({ name: 'tmp', start: () => Promise.resolve(), stop: () => rm(tmpDir, { recursive: true, force: true }) });
    const cameras = new Cameras({
      logger,
      clock,
      config: config.cameras,
      deviceId: config.device_id,
      tmpDir,
      env: this.deps.env,
      modelInput: { size: spec.size, resize: spec.resize },
      slot: (id) => pipeline.sink(id),
      counters: (id) => pipeline.counters()[id],
      publishStatus: (_id, payload) => mqtt.publishCameraStatus(payload),
      events,
    });
    this.cameras = cameras;
    await this.lifecycle.start({ name: 'cameras', start: () => cameras.start(), stop: () => cameras.stop() });

    let ha: HomeAssistant | undefined;
    if (config.homeassistant.enabled) {
      ha = new HomeAssistant({
        logger: child('homeassistant'),
        clock,
        config: config.homeassistant,
        mqtt,
        context: () => ({ deviceId: config.device_id, version: this.deps.version, topics: mqtt.topics, cameras: cameras.ids(), rulesFor: (c) => watcher.rulesFor(c) }),
      });
      const part = ha;
      await this.lifecycle.start({ name: 'homeassistant', start: () => part.start(), stop: () => part.stop() });
    }
    if (config.commands.enabled) {
      const auth = new CommandAuth(config.commands);
      logCommandAccess(child('commands'), auth, mqtt.topics.request('#'));
      const commands = new CommandServer({
        logger: child('commands'),
        config: config.commands,
        auth,
        mqtt,
        commands: daemonCommands({
          cameras,
          router,
          settings,
          mqtt,
          ...(models.updates ? { updateCheck: async () => ({ outcome: await models.updates!.checkNow(), model: models.updates!.payload }) } : {}),
        }),
      });
      await this.lifecycle.start({ name: 'commands', start: () => commands.start(), stop: () => commands.stop() });
    }
    // A schedule rather than one ticker: a reload may change stats_interval.
    const stats = new StatsSchedule({
      intervalSeconds: config.stats_interval,
      ticker: (intervalMs) => new StatsTicker({
        logger: child('stats'),
        clock,
        intervalMs,
        deviceId: config.device_id,
        collect: () => ({
          health: cameras.health(),
          counters: pipeline.counters(),
          inference: { p50: inference.percentile(50), p95: inference.percentile(95), samples: inference.count },
          mqtt: { connected: mqtt.connected, queued: mqtt.queued, sent: mqtt.sent, dropped: mqtt.droppedOffline },
          model: this.modelRef() ?? null,
        }),
        publish: (payload) => mqtt.publish(mqtt.topics.stats, JSON.stringify(payload), { qos: 0 }),
      }),
    });
    await this.lifecycle.start({ name: 'stats', start: () => stats.start(), stop: () => stats.stop() });
    await this.lifecycle.start({
      name: 'updates',
      start: () =>
        models.startUpdates(async (next) => {
          await pipeline.setClassifier(next);
          mqtt.republish(); // availability carries the model version
        }),
      // Early in the shutdown: a download or validation in progress is aborted (its process killed).
      stop: () => models.stopUpdates(),
    });
    // READY=1, STATUS= and WATCHDOG=1 from what the pipeline does, now that every part is up.
    const watchdog = new ServiceWatchdog({
      logger: child('watchdog'),
      clock,
      notifier,
      pipeline,
      cameras: () => cameras.health(),
      model: () => this.modelRef(),
      mqttConnected: () => mqtt.connected,
    });
    this.watchdog = watchdog;
    await this.lifecycle.start({ name: 'watchdog', start: () => watchdog.start(), stop: () => watchdog.stop() });
    // Last, so it stops first: a reload in progress finishes before the parts it touches stop.
    const reloader = new ConfigReloader({
      logger: child('config'),
      clock,
      config,
      deviceId: config.device_id,
      labels: () => models.current?.labelList ?? classifier.labelList,
      setLogLevel: this.deps.setLogLevel ?? ((level) => (logger.level = level)),
      settings,
      watcher,
      cameras,
      stats,
      mqtt,
      ...(ha ? { resyncDiscovery: () => ha.resync() } : {}),
    });
    this.reloader = reloader;
    await this.lifecycle.start({ name: 'reload', start: () => reloader.start(), stop: () => reloader.stop() });
    logger.info({ device: config.device_id, cameras: config.cameras.map((c) => c.id) }, 'daemon started');
  }

  /** The configuration in force: the start-up one with the changes reloads applied. */
  get activeConfig(): Config {
    return this.reloader?.active ?? this.deps.config;
  }

  /**
   * Re-reads the configuration and applies what can change at runtime (see ConfigReloader).
   * Resolves with the report, or undefined when there is nothing to reload into (not started,
   * or shutting down). Never rejects.
   */
  async reload(from: ConfigSource): Promise<ConfigReportPayload | undefined> {
    if (!this.reloader) {
      this.deps.logger.info('config reload ignored: the daemon is not running');
      return undefined;
    }
    return this.reloader.reload(from);
  }

  async stop(): Promise<void> {
    // Before anything stops, so systemd knows the exit that follows is wanted.
    this.notifier?.notify({ STOPPING: '1', STATUS: 'stopping' });
    const starting = this.starting;
    if (starting) {
      this.lifecycle.abort();
      this.models?.abort();
      await starting.catch((err: unknown) => {
        if (!(err instanceof StartAborted)) this.deps.logger.debug({ err: (err as Error).message }, 'start failed while stopping');
      });
    }
    await this.lifecycle.stopAll();
    this.deps.logger.info('daemon stopped');
  }

  /** Watch rules bound to the model's labels; an unknown label is a configuration error. */
  private watcher(labels: readonly string[]): LabelWatcher {
    try {
      return new LabelWatcher(resolveRules(this.deps.config.watch, labels));
    } catch (err) {
      throw new ConfigError('config', [(err as Error).message]);
    }
  }

  private modelRef(): ModelRef | undefined {
    const model = this.models?.model;
    return model ? { name: model.name, version: model.version, sha256: model.sha256 } : undefined;
  }
}
