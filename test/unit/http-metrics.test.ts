import { describe, expect, it } from 'vitest';
import { createDaemonMetrics } from '../../src/service/http/metrics.js';
import { readiness, type DaemonView } from '../../src/service/http/daemon-view.js';
import type { CameraHealthSnapshot, CameraState } from '../../src/camera/camera-health.js';
import type { CameraCounters } from '../../src/daemon/frame-slots.js';
import type { UpdateState } from '../../src/mqtt/payloads.js';
import { parsePrometheus, samples, value } from '../helpers/prometheus.js';

function health(state: CameraState, extra: Partial<CameraHealthSnapshot> = {}): CameraHealthSnapshot {
  return { state, since: 0, lastError: null, fps: 0, reconnectsLastHour: 0, stallsLastHour: 0, ...extra };
}

function counters(extra: Partial<CameraCounters> = {}): CameraCounters {
  return { captured: 0, classified: 0, dropped: 0, decodeErrors: 0, captureErrors: 0, skippedFiles: 0, inferenceErrors: 0, ended: false, ...extra };
}

/** A daemon as plain data, mutable between scrapes. */
function fakeDaemon() {
  const state = {
    model: { name: 'colors', version: '1.2.0', sha256: 'ab'.repeat(32), provider: 'cpu' as const } as
      | { name: string; version: string; sha256: string; provider: 'cpu' }
      | undefined,
    health: { door: health('online', { fps: 4.5 }), yard: health('offline', { lastError: 'connection refused', reconnectsLastHour: 3 }) } as Record<string, CameraHealthSnapshot>,
    counters: {
      door: counters({ captured: 120, classified: 100, dropped: 17, decodeErrors: 2, inferenceErrors: 1, skippedFiles: 4 }),
      yard: counters({ captureErrors: 5 }),
    } as Record<string, CameraCounters>,
    mqtt: { connected: true, queued: 3, sent: 99, droppedOffline: 7 } as { connected: boolean; queued: number; sent: number; droppedOffline: number } | undefined,
    update: undefined as UpdateState | undefined,
  };
  const view: DaemonView = {
    model: () => state.model,
    cameras: () => ({ ids: () => Object.keys(state.health), health: () => state.health, latest: () => undefined }),
    counters: () => state.counters,
    mqtt: () => state.mqtt,
    updates: () => (state.update ? { state: state.update } : undefined),
  };
  return { state, view };
}

async function scrape(metrics: ReturnType<typeof createDaemonMetrics>) {
  return parsePrometheus(await metrics.render());
}

describe('daemon metrics', () => {
  it('exposes the per-camera frame counters, typed as counters', async () => {
    const { view } = fakeDaemon();
    const e = await scrape(createDaemonMetrics({ view, version: '0.1.0', processMetrics: false }));
    expect(value(e, 'edge_classifier_frames_captured_total', { camera: 'door' })).toBe(120);
    expect(value(e, 'edge_classifier_frames_classified_total', { camera: 'door' })).toBe(100);
    expect(value(e, 'edge_classifier_frames_dropped_total', { camera: 'door' })).toBe(17);
    expect(value(e, 'edge_classifier_frames_errored_total', { camera: 'door', stage: 'decode' })).toBe(2);
    expect(value(e, 'edge_classifier_frames_errored_total', { camera: 'door', stage: 'inference' })).toBe(1);
    expect(value(e, 'edge_classifier_frames_errored_total', { camera: 'yard', stage: 'capture' })).toBe(5);
    expect(value(e, 'edge_classifier_files_skipped_total', { camera: 'door' })).toBe(4);
    expect(value(e, 'edge_classifier_files_skipped_total', { camera: 'yard' })).toBe(0);
    for (const name of ['frames_captured', 'frames_classified', 'frames_dropped', 'frames_errored', 'mqtt_sent_messages', 'mqtt_dropped_messages']) {
      expect(e.types.get(`edge_classifier_${name}_total`), name).toBe('counter');
    }
  });

  it('follows the daemon between scrapes, and drops the series of a camera that went away', async () => {
    const { state, view } = fakeDaemon();
    const metrics = createDaemonMetrics({ view, version: '0.1.0', processMetrics: false });
    await scrape(metrics);
    state.counters.door!.classified = 250;
    delete state.counters.yard;
    delete state.health.yard;
    const e = await scrape(metrics);
    expect(value(e, 'edge_classifier_frames_classified_total', { camera: 'door' })).toBe(250);
    expect(samples(e, 'edge_classifier_frames_captured_total', { camera: 'yard' })).toEqual([]);
    expect(samples(e, 'edge_classifier_camera_up', { camera: 'yard' })).toEqual([]);
  });

  it('exposes camera state, MQTT, model info, update state and readiness', async () => {
    const { state, view } = fakeDaemon();
    const metrics = createDaemonMetrics({ view, version: '0.1.0', processMetrics: false });
    let e = await scrape(metrics);
    expect(value(e, 'edge_classifier_camera_up', { camera: 'door' })).toBe(1);
    expect(value(e, 'edge_classifier_camera_up', { camera: 'yard' })).toBe(0);
    expect(value(e, 'edge_classifier_camera_fps', { camera: 'door' })).toBe(4.5);
    expect(value(e, 'edge_classifier_camera_reconnects_last_hour', { camera: 'yard' })).toBe(3);
    expect(samples(e, 'edge_classifier_camera_state', { camera: 'yard' }).filter((s) => s.value === 1).map((s) => s.labels.state)).toEqual(['offline']);
    expect(value(e, 'edge_classifier_mqtt_connected')).toBe(1);
    expect(value(e, 'edge_classifier_mqtt_queued_messages')).toBe(3);
    expect(value(e, 'edge_classifier_mqtt_sent_messages_total')).toBe(99);
    expect(value(e, 'edge_classifier_mqtt_dropped_messages_total')).toBe(7);
    expect(samples(e, 'edge_classifier_model_info')).toEqual([
      { name: 'edge_classifier_model_info', labels: { name: 'colors', version: '1.2.0', sha256: 'ab'.repeat(32), provider: 'cpu' }, value: 1 },
    ]);
    expect(value(e, 'edge_classifier_update_state', { state: 'disabled' })).toBe(1);
    expect(value(e, 'edge_classifier_ready')).toBe(1);
    expect(value(e, 'edge_classifier_build_info', { version: '0.1.0' })).toBe(1);

    state.mqtt = { connected: false, queued: 40, sent: 99, droppedOffline: 9 };
    state.update = 'downloading';
    state.model = undefined;
    e = await scrape(metrics);
    expect(value(e, 'edge_classifier_mqtt_connected')).toBe(0);
    expect(value(e, 'edge_classifier_mqtt_queued_messages')).toBe(40);
    expect(samples(e, 'edge_classifier_update_state').filter((s) => s.value === 1).map((s) => s.labels.state)).toEqual(['downloading']);
    expect(value(e, 'edge_classifier_update_state', { state: 'disabled' })).toBe(0);
    expect(samples(e, 'edge_classifier_model_info')).toEqual([]);
    expect(value(e, 'edge_classifier_ready')).toBe(0);
  });

  it('observes latencies in seconds into per-camera histograms', async () => {
    const { view } = fakeDaemon();
    const metrics = createDaemonMetrics({ view, version: '0.1.0', processMetrics: false });
    metrics.observe({ camera: 'door', latency: { preprocess: 4, inference: 30, total: 60 } });
    metrics.observe({ camera: 'door', latency: { preprocess: 6, inference: 70, total: 140 } });
    // A wall-clock step can make the capture-to-publish time negative; it must not go below 0.
    metrics.observe({ camera: 'yard', latency: { preprocess: 1, inference: 2, total: -500 } });
    const e = await scrape(metrics);
    expect(e.types.get('edge_classifier_inference_seconds')).toBe('histogram');
    expect(value(e, 'edge_classifier_inference_seconds_count', { camera: 'door' })).toBe(2);
    expect(value(e, 'edge_classifier_inference_seconds_sum', { camera: 'door' })).toBeCloseTo(0.1, 6);
    expect(value(e, 'edge_classifier_inference_seconds_bucket', { camera: 'door', le: '0.05' })).toBe(1);
    expect(value(e, 'edge_classifier_inference_seconds_bucket', { camera: 'door', le: '+Inf' })).toBe(2);
    expect(value(e, 'edge_classifier_preprocess_seconds_sum', { camera: 'door' })).toBeCloseTo(0.01, 6);
    expect(value(e, 'edge_classifier_end_to_end_seconds_bucket', { camera: 'door', le: '0.1' })).toBe(1);
    expect(value(e, 'edge_classifier_end_to_end_seconds_sum', { camera: 'yard' })).toBe(0);
  });

  it('forgets the histograms of a camera removed by a reload', async () => {
    const { state, view } = fakeDaemon();
    const metrics = createDaemonMetrics({ view, version: '0.1.0', processMetrics: false });
    metrics.observe({ camera: 'door', latency: { preprocess: 4, inference: 30, total: 60 } });
    metrics.observe({ camera: 'yard', latency: { preprocess: 4, inference: 30, total: 60 } });
    delete state.health.yard;
    delete state.counters.yard;
    const e = await scrape(metrics);
    expect(value(e, 'edge_classifier_inference_seconds_count', { camera: 'door' })).toBe(1);
    for (const h of ['preprocess', 'inference', 'end_to_end']) {
      expect(samples(e, `edge_classifier_${h}_seconds_count`).map((x) => x.labels.camera)).toEqual(['door']);
    }
  });

  it('reports a stalled pipeline', async () => {
    const { view } = fakeDaemon();
    let stalled: string | undefined = undefined;
    const metrics = createDaemonMetrics({ view: { ...view, stalled: () => stalled }, version: '0.1.0', processMetrics: false });
    expect(value(await scrape(metrics), 'edge_classifier_pipeline_stalled')).toBe(0);
    stalled = 'inference running for 31.0 s';
    expect(value(await scrape(metrics), 'edge_classifier_pipeline_stalled')).toBe(1);
  });

  it('adds the process metrics (RSS, event-loop delay) to its own registry, not the global one', async () => {
    const { view } = fakeDaemon();
    const a = createDaemonMetrics({ view, version: '0.1.0', processMetrics: true });
    // Two daemons in one process (tests) must not clash over metric names.
    const b = createDaemonMetrics({ view, version: '0.1.0', processMetrics: true });
    const e = await scrape(a);
    await scrape(b);
    expect(value(e, 'process_resident_memory_bytes')).toBeGreaterThan(10 * 2 ** 20);
    expect(value(e, 'nodejs_eventloop_lag_p99_seconds')).toBeGreaterThanOrEqual(0);
    const { register } = await import('prom-client');
    expect(await register.getMetricsAsJSON()).toEqual([]);
  });
});

describe('readiness', () => {
  it('is ready with a model and a camera online', () => {
    expect(readiness(fakeDaemon().view)).toMatchObject({ ready: true, failing: [], cameras: { online: ['door'], total: 2 } });
  });

  it('names every failing condition', () => {
    const { state, view } = fakeDaemon();
    state.model = undefined;
    state.health.door = health('starting');
    const r = readiness(view);
    expect(r.ready).toBe(false);
    expect(r.failing).toEqual(['no model loaded', 'no camera online: door starting, yard offline (connection refused)']);
  });
});
