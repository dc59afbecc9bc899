import { describe, expect, it, vi } from 'vitest';
import { join } from 'node:path';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { RuntimeSettings } from '../../src/config/runtime-settings.js';
import { createLogger } from '../../src/core/logger.js';
import { createSystemClock } from '../../src/core/clock.js';
import { LabelWatcher, resolveRules } from '../../src/rules/label-watch.js';
import { MqttPublisher } from '../../src/mqtt/mqtt-publisher.js';
import { Cameras } from '../../src/daemon/cameras.js';
import { Pipeline } from '../../src/daemon/pipeline.js';
import { PredictionRouter } from '../../src/daemon/prediction-router.js';
import { StatsSchedule } from '../../src/daemon/stats-schedule.js';
import { ConfigReloader, type ConfigSource } from '../../src/daemon/config-reloader.js';
import { EventBus } from '../../src/core/event-bus.js';
import type { DaemonEvents } from '../../src/daemon/events.js';
import { forgetRemovedCameras } from '../../src/daemon/camera-owners.js';
import { tempDir } from '../helpers/fixtures.js';

// The reloader with the daemon's real parts (nothing started that needs a broker, a model or
// a camera): validation before change, what is applied, and one reload at a time.

const LABELS = ['red', 'green', 'blue'];

const yaml = (extra = '', topK = 3): string => `
device_id: rl-unit
model: { path: m.onnx, labels: l.txt }
cameras:
  - id: gate
    source: { type: synthetic, fps: 1 }
mqtt: { url: mqtt://127.0.0.1:1, base_topic: ru }
publish: { top_k: ${topK} }
watch:
  - { label: red, frames: 2 }
stats_interval: 30
${extra}`;

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

function setup() {
  const dir = tempDir('ec-reload-');
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'info', stream: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) } });
  const clock = createSystemClock();
  const config = parseConfig(yaml(), 'start.yaml');
  const settings = new RuntimeSettings({ logger, base: config.publish, file: join(dir, 'runtime.json') });
  const watcher = new LabelWatcher(resolveRules(config.watch, LABELS));
  // Never started: what it is asked to retain stays in memory.
  const mqtt = new MqttPublisher({
    logger,
    clock,
    config: config.mqtt,
    deviceId: config.device_id,
    url: config.mqtt.url,
    embedded: false,
    version: 'test',
    statusDetails: () => ({}),
    predictionExpiry: () => 0,
    stateDir: dir,
  });
  const pipeline = new Pipeline({
    logger,
    clock,
    classifier: { prepare: () => Promise.reject(new Error('no frames here')), classify: () => Promise.reject(new Error('no frames here')) },
    topK: () => settings.get().top_k,
    publish: () => undefined,
  });
  const router = new PredictionRouter({
    clock,
    deviceId: config.device_id,
    settings: () => settings.get(),
    watcher,
    model: () => undefined,
    publishPrediction: () => undefined,
    publishLabel: () => undefined,
  });
  const events = new EventBus<DaemonEvents>({ logger });
  forgetRemovedCameras(events, { pipeline, router, watcher, mqtt });
  const cameras = new Cameras({
    logger,
    clock,
    config: [],
    deviceId: config.device_id,
    tmpDir: dir,
    env: {},
    modelInput: { size: 8, resize: 8 },
    slot: (id) => pipeline.sink(id),
    counters: (id) => pipeline.counters()[id],
    publishStatus: () => undefined,
    events,
  });
  const tickers: number[] = [];
  const stats = new StatsSchedule({
    intervalSeconds: config.stats_interval,
    ticker: (ms) => {
      tickers.push(ms);
      return { start: () => Promise.resolve(), stop: () => Promise.resolve() };
    },
  });
  const levels: string[] = [];
  const reloader = new ConfigReloader({
    logger,
    clock,
    config,
    deviceId: config.device_id,
    labels: () => LABELS,
    setLogLevel: (l) => void levels.push(l),
    settings,
    watcher,
    cameras,
    stats,
    mqtt,
  });
  const source = (text: string): ConfigSource => ({ file: 'test.yaml', load: () => Promise.resolve(parseConfig(text, 'test.yaml')) });
  return { reloader, settings, watcher, tickers, levels, lines, source, config, cameras, pipeline, router, mqtt, events };
}

describe('ConfigReloader', () => {
  it('applies runtime keys, reports the rest as needs_restart and keeps their running value', async () => {
    const { reloader, settings, tickers, levels, lines, source } = setup();
    const changed = yaml('log: { level: debug }\nshutdown_timeout_ms: 9000', 1).replace('m.onnx', 'other.onnx').replace('stats_interval: 30', 'stats_interval: 5');
    const report = await reloader.reload(source(changed));
    expect(report).toMatchObject({
      v: 1,
      device: 'rl-unit',
      file: 'test.yaml',
      result: 'applied',
      applied: ['publish.top_k', 'stats_interval', 'log.level', 'shutdown_timeout_ms'],
      needs_restart: ['model.path'],
      overridden: [],
      errors: [],
    });
    expect(settings.get().top_k).toBe(1);
    expect(levels).toEqual(['debug']);
    expect(tickers).toEqual([5_000]);
    expect(reloader.active.shutdown_timeout_ms).toBe(9000);
    expect(reloader.active.model.path).toBe('m.onnx');
    const summary = lines.filter((l) => l.msg === 'config reloaded');
    expect(summary).toHaveLength(1);
    expect(summary[0]).toMatchObject({ level: 40, applied: report!.applied, needs_restart: ['model.path'] });

    // The same file again: nothing more to apply, the restart is still pending.
    const again = await reloader.reload(source(changed));
    expect(again).toMatchObject({ result: 'applied', applied: [], needs_restart: ['model.path'] });
    // Back to the running model: nothing differs any more.
    const back = await reloader.reload(source(changed.replace('other.onnx', 'm.onnx')));
    expect(back).toMatchObject({ result: 'unchanged', applied: [], needs_restart: [] });
    expect(lines.some((l) => l.msg === 'config reloaded: no changes')).toBe(true);
  });

  it('rejects an invalid file with its key paths and changes nothing', async () => {
    const { reloader, settings, lines, config } = setup();
    const bad: ConfigSource = {
      file: 'bad.yaml',
      load: () => Promise.reject(new ConfigError('bad.yaml', ['publish.top_k: Too small: expected number to be >=1'])),
    };
    const report = await reloader.reload(bad);
    expect(report).toMatchObject({ result: 'invalid', errors: ['publish.top_k: Too small: expected number to be >=1'], applied: [], needs_restart: [] });
    expect(settings.get().top_k).toBe(3);
    expect(reloader.active).toBe(config);
    const err = lines.find((l) => l.msg === 'config reload rejected; still running on the previous configuration');
    expect(err).toMatchObject({ level: 50, file: 'bad.yaml', problems: ['publish.top_k: Too small: expected number to be >=1'] });
  });

  it('rejects watch rules naming a label the model does not have, before changing anything', async () => {
    const { reloader, settings, watcher, source } = setup();
    const text = yaml('', 1).replace('{ label: red, frames: 2 }', '{ label: purple, frames: 2 }');
    const report = await reloader.reload(source(text));
    expect(report?.result).toBe('invalid');
    expect(report?.errors[0]).toMatch(/^watch\[0\]\.label: "purple" is not in the labels file/);
    expect(settings.get().top_k).toBe(3); // publish.top_k changed in the same file: not applied either
    expect(watcher.rulesFor('gate').map((r) => r.label)).toEqual(['red']);
  });

  it('removes a camera: Cameras emits cameraRemoved once its capture stopped, and each owner forgets its state', async () => {
    const { reloader, source, config, cameras, pipeline, router, watcher, mqtt, events } = setup();
    const heard: string[] = [];
    events.on('cameraAdded', {}, ({ camera }) => heard.push(`added ${camera}`));
    events.on('cameraRemoved', {}, ({ camera }) => heard.push(`removed ${camera}`));
    await cameras.add({ ...config.cameras[0]!, enabled: false });
    pipeline.sink('gate');
    const owners = [vi.spyOn(pipeline, 'removeCamera'), vi.spyOn(router, 'forget'), vi.spyOn(watcher, 'forget')];
    const cleared = vi.spyOn(mqtt, 'clearRetained');
    const next = yaml().replace('- id: gate\n', '- id: yard\n    enabled: false\n');
    const report = await reloader.reload(source(next));
    expect(report).toMatchObject({ result: 'applied', cameras: { added: ['yard'], removed: ['gate'], restarted: [] }, errors: [] });
    expect(heard).toEqual(['added gate', 'removed gate', 'added yard']);
    expect(cameras.ids()).toEqual(['yard']);
    expect(pipeline.counters()).toEqual({});
    for (const owner of owners) expect(owner.mock.calls).toEqual([['gate']]);
    // The same order as when the reloader called each owner itself: slot, filter, labels, retained topics.
    const order = [...owners, cleared].map((spy) => spy.mock.invocationCallOrder[0]!);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(cleared.mock.calls).toEqual([['ru/rl-unit/gate/status'], ['ru/rl-unit/gate/label/red']]);
  });

  it('applies new watch rules', async () => {
    const { reloader, watcher, source } = setup();
    const report = await reloader.reload(source(yaml().replace('{ label: red, frames: 2 }', '{ label: blue, name: sky, frames: 1 }')));
    // Keys of the old rule first, then the new ones.
    expect(report?.applied).toEqual(['watch[0].label', 'watch[0].frames', 'watch[0].name']);
    expect(watcher.rulesFor('gate').map((r) => [r.label, r.slug, r.index])).toEqual([['blue', 'sky', 2]]);
    expect(watcher.indices).toEqual([2]);
  });

  it('reports publish keys still overridden by the set command, which keeps precedence', async () => {
    const { reloader, settings, lines, source } = setup();
    await settings.set({ top_k: 2 });
    const report = await reloader.reload(source(yaml('', 1)));
    expect(report).toMatchObject({ result: 'applied', applied: ['publish.top_k'], overridden: ['publish.top_k'] });
    expect(settings.get().top_k).toBe(2);
    await settings.set({}, true);
    expect(settings.get().top_k).toBe(1); // the file's new value, once the override is dropped
    expect(lines.find((l) => l.msg === 'config reloaded')).toMatchObject({ level: 40, overridden: ['publish.top_k'], hint: expect.stringContaining('reset') });
  });

  it('runs one reload at a time and coalesces the requests made meanwhile into one', async () => {
    const { reloader } = setup();
    const first = deferred<Config>();
    const order: string[] = [];
    let loads = 0;
    const slow: ConfigSource = {
      file: 'f.yaml',
      load: async () => {
        const n = ++loads;
        order.push(`load ${n}`);
        if (n === 1) return first.promise;
        return parseConfig(yaml('', 4), 'f.yaml');
      },
    };
    const a = reloader.reload(slow);
    const b = reloader.reload(slow);
    const c = reloader.reload(slow);
    expect(b).toBe(c);
    await new Promise((r) => setTimeout(r, 20));
    expect(order).toEqual(['load 1']); // the second waits for the first to finish
    first.resolve(parseConfig(yaml('', 2), 'f.yaml'));
    const [ra, rb] = await Promise.all([a, b]);
    expect(ra?.applied).toEqual(['publish.top_k']);
    expect(rb?.applied).toEqual(['publish.top_k']);
    expect(order).toEqual(['load 1', 'load 2']);
    expect(reloader.active.publish.top_k).toBe(4);
  });

  it('ignores reloads once stopping, and stop waits for the one in progress', async () => {
    const { reloader, settings, lines } = setup();
    const gate = deferred<Config>();
    let loads = 0;
    const src: ConfigSource = { file: 'f.yaml', load: () => (++loads === 1 ? gate.promise : Promise.resolve(parseConfig(yaml('', 9), 'f.yaml'))) };
    const running = reloader.reload(src);
    const queued = reloader.reload(src);
    let stopped = false;
    const stopping = reloader.stop().then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(stopped).toBe(false);
    gate.resolve(parseConfig(yaml('', 2), 'f.yaml'));
    await stopping;
    expect((await running)?.applied).toEqual(['publish.top_k']);
    expect(await queued).toBeUndefined();
    expect(await reloader.reload(src)).toBeUndefined();
    expect(loads).toBe(1);
    expect(settings.get().top_k).toBe(2);
    expect(lines.filter((l) => l.msg === 'config reload ignored: shutting down')).toHaveLength(2);
  });
});
