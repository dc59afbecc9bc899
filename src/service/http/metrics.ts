import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { UpdateState } from '../../mqtt/payloads.js';
import type { CameraState } from '../../camera/camera-health.js';
import { readiness, type DaemonView } from './daemon-view.js';

export interface FrameLatency {
  camera: string;
  /** Milliseconds, as the pipeline measures them. */
  latency: { preprocess: number; inference: number; total: number };
}

export interface DaemonMetrics {
  readonly registry: Registry;
  /** One classified frame: its latencies go into the histograms. */
  observe(frame: FrameLatency): void;
  /** The Prometheus text exposition. */
  render(): Promise<string>;
}

export interface DaemonMetricsDeps {
  view: DaemonView;
  version: string;
  /** Node process metrics (RSS, CPU, heap, GC, event-loop delay). Off in unit tests of the daemon's own families. */
  processMetrics: boolean;
}

const P = 'edge_classifier_';

const CAMERA_STATES: readonly CameraState[] = ['starting', 'online', 'offline', 'disabled', 'ended'];
// "disabled": updates.manifest_url is not set.
const UPDATE_STATES: readonly (UpdateState | 'disabled')[] = [
  'disabled',
  'idle',
  'checking',
  'downloading',
  'validating',
  'activating',
  'probation',
  'rolled-back',
  'failed',
];

// Seconds, Prometheus style. Preprocessing (sharp decode + resize) on a Pi is ms to tens of ms,
// inference from ~1 ms (GPU, tiny models) to seconds (ResNet on a Pi Zero).
const PREPROCESS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
const INFERENCE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const TOTAL_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type Sample = [labels: Record<string, string>, value: number];

/**
 * A counter whose value lives elsewhere (the pipeline's counters): read at scrape time. The
 * sources only ever count up, so the exposed series are proper monotonic counters.
 */
function mirroredCounter(registry: Registry, name: string, help: string, labelNames: string[], read: () => Sample[]): void {
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of read()) this.inc(labels, value);
    },
  });
}

function mirroredGauge(registry: Registry, name: string, help: string, labelNames: string[], read: () => Sample[]): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      // Series of cameras or states that went away must not linger with their last value.
      this.reset();
      for (const [labels, value] of read()) this.set(labels, value);
    },
  });
}

/** The daemon's Prometheus metrics, in a registry of its own (no global default registry). */
export function createDaemonMetrics(deps: DaemonMetricsDeps): DaemonMetrics {
  const { view } = deps;
  const registry = new Registry();
  if (deps.processMetrics) collectDefaultMetrics({ register: registry });

  const perCamera = (pick: (c: ReturnType<DaemonView['counters']>[string]) => number) => (): Sample[] =>
    Object.entries(view.counters()).map(([camera, c]) => [{ camera }, pick(c)]);
  mirroredCounter(registry, `${P}frames_captured_total`, 'Frames delivered by the camera source.', ['camera'], perCamera((c) => c.captured));
  mirroredCounter(registry, `${P}frames_classified_total`, 'Frames classified and published.', ['camera'], perCamera((c) => c.classified));
  mirroredCounter(
    registry,
    `${P}frames_dropped_total`,
    'Frames replaced by a newer one before inference took them (inference busy), or discarded at shutdown.',
    ['camera'],
    perCamera((c) => c.dropped),
  );
  mirroredCounter(registry, `${P}frames_errored_total`, 'Frames lost to an error, by stage: capture, decode (preprocessing) or inference.', ['camera', 'stage'], () =>
    Object.entries(view.counters()).flatMap(([camera, c]): Sample[] => [
      [{ camera, stage: 'capture' }, c.captureErrors],
      [{ camera, stage: 'decode' }, c.decodeErrors],
      [{ camera, stage: 'inference' }, c.inferenceErrors],
    ]),
  );
  mirroredCounter(registry, `${P}files_skipped_total`, 'Files a directory source skipped: not a regular file, over max_file_bytes, or not read within read_timeout_ms.', ['camera'], perCamera((c) => c.skippedFiles));

  const health = () => Object.entries(view.cameras()?.health() ?? {});
  mirroredGauge(registry, `${P}camera_up`, '1 while the camera delivers frames (state online).', ['camera'], () =>
    health().map(([camera, h]) => [{ camera }, h.state === 'online' ? 1 : 0]),
  );
  mirroredGauge(registry, `${P}camera_state`, 'The camera state: 1 for the current one.', ['camera', 'state'], () =>
    health().flatMap(([camera, h]) => CAMERA_STATES.map((state): Sample => [{ camera, state }, h.state === state ? 1 : 0])),
  );
  mirroredGauge(registry, `${P}camera_fps`, 'Frames per second captured over the last 10 s.', ['camera'], () => health().map(([camera, h]) => [{ camera }, h.fps]));
  mirroredGauge(registry, `${P}camera_reconnects_last_hour`, 'Source restarts (process exits, stalls, errors) in the last hour.', ['camera'], () =>
    health().map(([camera, h]) => [{ camera }, h.reconnectsLastHour]),
  );

  const histogram = (name: string, help: string, buckets: number[]) =>
    new Histogram({ name, help, buckets, labelNames: ['camera'], registers: [registry] });
  const preprocess = histogram(`${P}preprocess_seconds`, 'Decode, resize and normalise one frame (main thread, sharp).', PREPROCESS_BUCKETS);
  const inference = histogram(`${P}inference_seconds`, 'One inference in the worker thread.', INFERENCE_BUCKETS);
  const total = histogram(`${P}end_to_end_seconds`, 'Capture to published prediction.', TOTAL_BUCKETS);

  const mqtt = () => view.mqtt();
  mirroredGauge(registry, `${P}mqtt_connected`, '1 while connected to the MQTT broker.', [], () => [[{}, mqtt()?.connected ? 1 : 0]]);
  mirroredGauge(registry, `${P}mqtt_queued_messages`, 'Predictions and events waiting for the broker (in flight included).', [], () => [[{}, mqtt()?.queued ?? 0]]);
  mirroredCounter(registry, `${P}mqtt_sent_messages_total`, 'Messages the broker acknowledged (QoS 1/2) or that were written (QoS 0).', [], () => [[{}, mqtt()?.sent ?? 0]]);
  mirroredCounter(
    registry,
    `${P}mqtt_dropped_messages_total`,
    'Predictions and events dropped while offline: beyond the queue bound, or QoS 0.',
    [],
    () => [[{}, mqtt()?.droppedOffline ?? 0]],
  );

  mirroredGauge(registry, `${P}model_info`, 'The model serving now (value 1).', ['name', 'version', 'sha256', 'provider'], () => {
    const m = view.model();
    return m ? [[{ name: m.name, version: m.version, sha256: m.sha256, provider: m.provider }, 1]] : [];
  });
  mirroredGauge(registry, `${P}update_state`, 'Over-the-air update state: 1 for the current one ("disabled": no updates.manifest_url).', ['state'], () => {
    const current = view.updates()?.state ?? 'disabled';
    const states = UPDATE_STATES.includes(current) ? UPDATE_STATES : [...UPDATE_STATES, current];
    return states.map((state): Sample => [{ state }, state === current ? 1 : 0]);
  });
  mirroredGauge(registry, `${P}ready`, '1 when /readyz answers 200: a model loaded and at least one camera online.', [], () => [[{}, readiness(view).ready ? 1 : 0]]);
  mirroredGauge(registry, `${P}pipeline_stalled`, '1 while the pipeline is stuck (e.g. a wedged inference): /healthz answers 503 and systemd gets no WATCHDOG=1.', [], () => [
    [{}, view.stalled?.() !== undefined ? 1 : 0],
  ]);
  mirroredGauge(registry, `${P}inference_failing`, '1 while every recent inference fails (e.g. NaN/Infinity outputs): /healthz answers 503; cleared by a classified frame.', [], () => [
    [{}, view.failing?.() !== undefined ? 1 : 0],
  ]);
  mirroredGauge(registry, `${P}build_info`, 'The daemon version (value 1).', ['version'], () => [[{ version: deps.version }, 1]]);

  // Histograms keep their series until told otherwise: a camera removed by a reload is forgotten
  // at the next scrape, like the mirrored series.
  const observed = new Set<string>();
  const forgetRemoved = (): void => {
    const ids = view.cameras()?.ids();
    if (!ids) return;
    for (const camera of observed) {
      if (ids.includes(camera)) continue;
      for (const h of [preprocess, inference, total]) h.remove({ camera });
      observed.delete(camera);
    }
  };

  return {
    registry,
    observe: ({ camera, latency }) => {
      observed.add(camera);
      preprocess.observe({ camera }, latency.preprocess / 1000);
      inference.observe({ camera }, latency.inference / 1000);
      // Wall-clock based (capture timestamp): a clock step must not yield a negative duration.
      total.observe({ camera }, Math.max(0, latency.total) / 1000);
    },
    render: () => {
      forgetRemoved();
      return registry.metrics();
    },
  };
}
