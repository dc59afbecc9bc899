import { tmpdir } from 'node:os';
import { Classifier } from '../inference/classifier.js';
import { Pipeline, type ClassifiedFrame, type FrameClassifier } from '../daemon/pipeline.js';
import { PredictionRouter } from '../daemon/prediction-router.js';
import { EmbeddedBroker } from '../mqtt/embedded-broker.js';
import { MqttPublisher } from '../mqtt/mqtt-publisher.js';
import { LabelWatcher } from '../rules/label-watch.js';
import { MqttSchema, PublishSchema } from '../config/schema.js';
import type { BenchSettings } from './settings.js';
import { CpuMeter, LoopDelayProbe, RssSampler } from './probes.js';
import { p50p99, type P50P99 } from './stats.js';
import type { TimedSample } from './chart.js';

export interface PipelineResult {
  fps: number;
  latency_ms: { preprocess: P50P99; inference: P50P99; total: P50P99 };
  event_loop_delay_p99_ms: number;
  rss_mb: { peak: number; steady: number; growth: number };
  /** Classifier created -> first prediction handed to MQTT (model load, warm-up, one frame). */
  startup_ms: number;
  /** Process CPU time per frame over the measured window (see CpuMeter). */
  cpu_ms_per_frame: number;
  /** Every measured frame, for the chart (t_ms: publication time in the measured window). */
  samples: { total: TimedSample[]; inference: TimedSample[] };
}

const CAMERA = 'bench';

/**
 * The daemon's own path at full rate: Classifier (worker) + Pipeline + PredictionRouter +
 * MqttPublisher (QoS 1) into an embedded broker. The source waits for the camera's slot to be
 * free before each push (like a replay source), so no frame is dropped and the pipeline sets
 * the pace; or, with a rate, it also waits for each frame's due time, like a camera.
 */
export async function measurePipeline(s: BenchSettings, labelsPath: string): Promise<PipelineResult> {
  const { logger, clock } = s;
  const broker = new EmbeddedBroker({ logger: logger.child({ module: 'bench-broker' }), config: { host: '127.0.0.1', port: 0 } });
  await broker.start();
  // No delay before sending: nothing is queued at connect, and the bench must not wait for it.
  const mqttConfig = MqttSchema.parse({ url: broker.url, qos: 1, queue: { drain_delay_ms: 0 } });
  const mqtt = new MqttPublisher({
    logger: logger.child({ module: 'bench-mqtt' }),
    clock,
    config: mqttConfig,
    deviceId: 'bench',
    url: broker.url,
    embedded: true,
    version: 'bench',
    statusDetails: () => ({}),
    predictionExpiry: () => 0,
    stateDir: tmpdir(),
  });
  const connected = new Promise<void>((resolve) => mqtt.onConnect(resolve));
  let classifier: Classifier | undefined;
  let pipeline: Pipeline | undefined;
  try {
    await mqtt.start();
    await withTimeout(connected, 10_000, 'the bench could not connect to its embedded MQTT broker');

    const total = s.warmup + s.frames;
    const startedAt = clock.monotonic();
    classifier = new Classifier({
      logger: logger.child({ module: 'bench-classifier' }),
      clock,
      workerUrl: s.workerUrl,
      config: {
        modelPath: s.modelPath,
        labelsPath,
        preprocess: s.spec,
        output: 'auto',
        providers: s.providers,
        intraOpThreads: s.threads,
        allowSpinning: s.spinning,
        deviceId: 0,
      },
    });
    const model = await classifier.start();
    const settings = PublishSchema.parse({});
    const router = new PredictionRouter({
      clock,
      deviceId: 'bench',
      settings: () => settings,
      watcher: new LabelWatcher([]),
      model: () => ({ name: model.name, version: model.version, sha256: model.sha256 }),
      publishPrediction: (p) => mqtt.publishPrediction(p),
      publishLabel: (e) => mqtt.publishLabelEvent(e),
    });

    // Any lost frame would stall the count below: fail the bench instead.
    let fail: (err: Error) => void = () => undefined;
    let finish: () => void = () => undefined;
    const done = new Promise<void>((resolve, reject) => {
      finish = resolve;
      fail = reject;
    });
    // Observed at the end; a failure meanwhile must not count as an unhandled rejection.
    done.catch(() => undefined);
    const active = classifier;
    const checked: FrameClassifier = {
      prepare: (data, raw) => active.prepare(data, raw).catch((err: Error) => {
        fail(new Error(`bench frame could not be prepared: ${err.message}`));
        throw err;
      }),
      classify: (tensor, k, watch) => active.classify(tensor, k, watch),
    };

    const probe = new LoopDelayProbe();
    const rss = new RssSampler();
    const cpu = new CpuMeter();
    let cpuMs = 0;
    const lat = { preprocess: [] as number[], inference: [] as number[], total: [] as number[] };
    const samples = { total: [] as TimedSample[], inference: [] as TimedSample[] };
    let published = 0;
    let firstAt = 0;
    let measureFrom = 0;
    let measureTo = 0;
    const onPublished = (r: ClassifiedFrame): void => {
      router.handle(r);
      published++;
      const now = clock.monotonic();
      if (published === 1) {
        firstAt = now;
      }
      if (published > s.warmup) {
        lat.preprocess.push(r.latency.preprocess);
        lat.inference.push(r.latency.inference);
        lat.total.push(r.latency.total);
        samples.total.push({ t_ms: now - measureFrom, ms: r.latency.total });
        samples.inference.push({ t_ms: now - measureFrom, ms: r.latency.inference });
      }
      // The measured window runs from the last warm-up frame's publication to the last one's.
      if (published === Math.max(1, s.warmup)) {
        measureFrom = now;
        probe.start();
        rss.start();
        cpu.start();
      }
      if (published === total) {
        measureTo = now;
        cpuMs = cpu.stopMs();
        finish();
      }
    };
    pipeline = new Pipeline({
      logger: logger.child({ module: 'bench-pipeline' }),
      clock,
      classifier: checked,
      topK: () => settings.top_k,
      watch: () => [],
      publish: onPublished,
      onInferenceError: () => fail(new Error('inference failed during the bench (see the log)')),
    });
    await pipeline.start();
    const sink = pipeline.sink(CAMERA);
    const firstPush = clock.monotonic();
    for (let i = 0; i < total; i++) {
      await sink.whenIdle();
      // A camera's pace: frame i is due at i/rate. A late pipeline delays it (nothing is dropped).
      if (s.rate > 0) await clock.sleep(firstPush + (i * 1000) / s.rate - clock.monotonic());
      const data = s.data[i % s.data.length]!;
      sink.push({ camera: CAMERA, seq: i + 1, capturedAt: clock.now(), source: 'bench', data, ...(s.raw ? { raw: s.raw } : {}) });
    }
    await done;
    const eventLoopP99 = probe.stopP99();
    const memory = rss.stop();
    // Every QoS 1 prediction acknowledged by the broker: the publish cost really was paid.
    await withTimeout(drained(mqtt, (ms) => clock.sleep(ms)), 10_000, 'the embedded broker did not acknowledge every prediction');
    const frames = Math.max(1, total - Math.max(1, s.warmup));
    return {
      fps: (frames * 1000) / Math.max(1e-6, measureTo - measureFrom),
      latency_ms: { preprocess: p50p99(lat.preprocess), inference: p50p99(lat.inference), total: p50p99(lat.total) },
      event_loop_delay_p99_ms: eventLoopP99,
      rss_mb: memory,
      startup_ms: firstAt - startedAt,
      cpu_ms_per_frame: cpuMs / frames,
      samples,
    };
  } finally {
    await pipeline?.stop();
    await classifier?.stop();
    await mqtt.stop();
    await broker.stop();
  }
}

async function drained(mqtt: MqttPublisher, sleep: (ms: number) => Promise<void>): Promise<void> {
  while (mqtt.queued > 0) await sleep(5);
}

async function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
