import { join } from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Logger } from '../ops/logger.js';
import type { Clock } from '../ops/clock.js';
import type { Config } from '../config/schema.js';
import type { connect as mqttConnect } from 'mqtt';
import { Classifier, type ActiveModel } from '../inference/classifier.js';
import { resolvePreprocess } from '../vision/presets.js';
import { EmbeddedBroker } from '../mqtt/embedded-broker.js';
import { MqttPublisher } from '../mqtt/mqtt-publisher.js';
import { ms, type PredictionPayload } from '../mqtt/payloads.js';
import { Cameras } from './cameras.js';
import { Pipeline, type ClassifiedFrame } from './pipeline.js';
import { Lifecycle } from './lifecycle.js';

export interface DaemonDeps {
  logger: Logger;
  clock: Clock;
  config: Config;
  version: string;
  workerUrl: URL;
  /** Parent of the daemon's scratch directory (webcam shots). */
  tmpRoot: string;
  /** For credentials referenced by name (password_env). */
  env: NodeJS.ProcessEnv;
  connectMqtt?: typeof mqttConnect;
  /** Called with every prediction after it was handed to MQTT (the demo prints them). */
  onPrediction?: (payload: PredictionPayload) => void;
}

/**
 * The composition root: builds sources -> pipeline (preprocessing) -> inference worker ->
 * MQTT publisher, starts them in dependency order and stops them in reverse.
 */
export class Daemon {
  private readonly lifecycle: Lifecycle;
  private classifier: Classifier | undefined;
  private pipeline: Pipeline | undefined;
  private publisher: MqttPublisher | undefined;
  private broker: EmbeddedBroker | undefined;
  private cameras: Cameras | undefined;

  constructor(private readonly deps: DaemonDeps) {
    this.lifecycle = new Lifecycle(deps.logger.child({ module: 'lifecycle' }));
  }

  get model(): ActiveModel | undefined {
    return this.classifier?.model;
  }

  get brokerUrl(): string | undefined {
    return this.broker?.url;
  }

  counters(): ReturnType<Pipeline['counters']> {
    return this.pipeline?.counters() ?? {};
  }

  async start(): Promise<void> {
    const { config, logger, clock } = this.deps;
    const m = config.model;
    const spec = resolvePreprocess(m.preset, m.preprocess);
    const classifier = new Classifier({
      logger: logger.child({ module: 'classifier' }),
      clock,
      workerUrl: this.deps.workerUrl,
      config: {
        modelPath: m.path,
        labelsPath: m.labels,
        name: m.name,
        version: m.version,
        preprocess: spec,
        output: m.output,
        providers: m.execution_providers,
        intraOpThreads: m.intra_op_threads,
        deviceId: m.device_id,
      },
    });
    this.classifier = classifier;
    // The model first: a broken model is a startup error, before anything is announced.
    await this.lifecycle.start({ name: 'classifier', start: () => classifier.start(), stop: () => classifier.stop() });

    let url = config.mqtt.url;
    if (url === 'embedded') {
      const broker = new EmbeddedBroker({ logger: logger.child({ module: 'broker' }), config: config.mqtt.embedded });
      this.broker = broker;
      await this.lifecycle.start({ name: 'broker', start: () => broker.start(), stop: () => broker.stop() });
      url = broker.url;
    }

    const publisher = new MqttPublisher({
      logger: logger.child({ module: 'mqtt' }),
      clock,
      config: config.mqtt,
      deviceId: config.device_id,
      url,
      version: this.deps.version,
      statusDetails: () => this.statusDetails(),
      ...(this.deps.connectMqtt ? { connect: this.deps.connectMqtt } : {}),
    });
    this.publisher = publisher;
    await this.lifecycle.start({ name: 'mqtt', start: () => publisher.start(), stop: () => publisher.stop() });

    const pipeline = new Pipeline({
      logger: logger.child({ module: 'pipeline' }),
      clock,
      classifier,
      topK: () => config.publish.top_k,
      publish: (r) => this.publish(r),
    });
    this.pipeline = pipeline;
    await this.lifecycle.start({ name: 'pipeline', start: () => pipeline.start(), stop: () => pipeline.stop() });

    const tmpDir = await mkdtemp(join(this.deps.tmpRoot, 'edge-classifier-'));
    this.lifecycle.adopt({ name: 'tmp', start: async () => {}, stop: () => rm(tmpDir, { recursive: true, force: true }) });
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
      publishStatus: (_id, payload) => publisher.publishCameraStatus(payload),
    });
    this.cameras = cameras;
    await this.lifecycle.start({ name: 'cameras', start: () => cameras.start(), stop: () => cameras.stop() });
    if (config.log.stats_interval > 0) {
      const ticker = new AbortController();
      let loop: Promise<void> = Promise.resolve();
      await this.lifecycle.start({
        name: 'stats',
        start: async () => {
          loop = this.logStats(config.log.stats_interval * 1000, ticker.signal);
          await Promise.resolve();
        },
        stop: async () => {
          ticker.abort();
          await loop;
        },
      });
    }
    logger.info({ device: config.device_id, cameras: config.cameras.map((c) => c.id) }, 'daemon started');
  }

  async stop(): Promise<void> {
    await this.lifecycle.stopAll();
    this.deps.logger.info({ counters: this.counters() }, 'daemon stopped');
  }

  /** Per-camera counters (captured, classified, dropped, errors) in the log, periodically. */
  private async logStats(intervalMs: number, signal: AbortSignal): Promise<void> {
    const log = this.deps.logger.child({ module: 'stats' });
    while (!signal.aborted) {
      await this.deps.clock.sleep(intervalMs, signal);
      if (signal.aborted) break;
      log.info({ cameras: this.counters(), health: this.cameras?.health(), mqtt: { connected: this.publisher?.connected ?? false, droppedOffline: this.publisher?.droppedOffline ?? 0 } }, 'stats');
    }
  }

  private statusDetails(): { model: PredictionPayload['model'] | null; execution_provider: string | null; cameras: string[] } {
    const model = this.classifier?.model;
    return {
      model: model ? { name: model.name, version: model.version, sha256: model.sha256 } : null,
      execution_provider: model?.provider ?? null,
      cameras: this.deps.config.cameras.map((c) => c.id),
    };
  }

  private publish(r: ClassifiedFrame): void {
    const model = this.classifier?.model;
    if (!model) return;
    const payload: PredictionPayload = {
      v: 1,
      device: this.deps.config.device_id,
      camera: r.frame.camera,
      seq: r.frame.seq,
      ts: new Date(r.frame.capturedAt).toISOString(),
      frame: { source: r.frame.source, width: r.width, height: r.height },
      model: { name: model.name, version: model.version, sha256: model.sha256 },
      top: r.top,
      latency_ms: { preprocess: ms(r.latency.preprocess), inference: ms(r.latency.inference), total: ms(r.latency.total) },
    };
    this.publisher?.publishPrediction(payload);
    this.deps.onPrediction?.(payload);
  }
}
