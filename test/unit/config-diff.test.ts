import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { ConfigSchema, type Config } from '../../src/config/schema.js';
import { diffConfig, mergeRuntime, RUNTIME_KEYS, runtimeKeyOf, sameValue } from '../../src/config/config-diff.js';

const BASE = `
device_id: cfg-01
model: { path: m.onnx, labels: l.txt, execution_providers: [cuda, cpu] }
cameras:
  - id: gate
    source: { type: directory, path: ./gate, fps: 2, loop: true }
  - id: yard
    source: { type: synthetic, fps: 1 }
mqtt: { url: mqtt://127.0.0.1:1883, base_topic: ec }
publish: { top_k: 3, only_on_change: { hysteresis: 0.1, heartbeat: 60 } }
watch:
  - { label: red, frames: 2 }
  - { label: blue, min_score: 0.4 }
stats_interval: 30
`;

const base = (): Config => parseConfig(BASE, 'base.yaml');

/** `next` = base changed by `mutate`; returns the diff base -> next. */
function change(mutate: (c: Config) => void): ReturnType<typeof diffConfig> {
  const next = base();
  mutate(next);
  return diffConfig(base(), next);
}

/** One change per top-level key: the exact path it is reported under, and whether it applies at runtime. */
const BY_KEY: Record<string, { mutate: (c: Config) => void; path: string; runtime: boolean }> = {
  device_id: { mutate: (c) => void (c.device_id = 'cfg-02'), path: 'device_id', runtime: false },
  model: { mutate: (c) => void (c.model.path = 'other.onnx'), path: 'model.path', runtime: false },
  cameras: { mutate: (c) => void (c.cameras[0]!.source = { type: 'directory', path: './gate', fps: 5, loop: true, realtime: false, max_file_bytes: 33_554_432, read_timeout_ms: 5_000 }), path: 'cameras[gate].source.fps', runtime: true },
  mqtt: { mutate: (c) => void (c.mqtt.url = 'mqtt://broker:1883'), path: 'mqtt.url', runtime: false },
  publish: { mutate: (c) => void (c.publish.top_k = 1), path: 'publish.top_k', runtime: true },
  watch: { mutate: (c) => void (c.watch[1]!.min_score = 0.9), path: 'watch[1].min_score', runtime: true },
  homeassistant: { mutate: (c) => void (c.homeassistant.enabled = true), path: 'homeassistant.enabled', runtime: false },
  commands: { mutate: (c) => void (c.commands.max_payload_bytes = 1024), path: 'commands.max_payload_bytes', runtime: false },
  updates: { mutate: (c) => void (c.updates.interval = 60), path: 'updates.interval', runtime: false },
  stats_interval: { mutate: (c) => void (c.stats_interval = 5), path: 'stats_interval', runtime: true },
  state_dir: { mutate: (c) => void (c.state_dir = '/tmp/x'), path: 'state_dir', runtime: false },
  log: { mutate: (c) => void (c.log.level = 'debug'), path: 'log.level', runtime: true },
  shutdown_timeout_ms: { mutate: (c) => void (c.shutdown_timeout_ms = 8000), path: 'shutdown_timeout_ms', runtime: true },
};

describe('diffConfig', () => {
  it('reports nothing for the same configuration', () => {
    const d = diffConfig(base(), base());
    expect(d).toEqual({ changes: [], applied: [], needsRestart: [], cameras: { added: [], removed: [], changed: [] } });
  });

  it.each(Object.entries(BY_KEY))('classifies a change under %s', (_key, { mutate, path, runtime }) => {
    const d = change(mutate);
    expect(d.changes).toEqual([{ path, kind: 'changed', runtime }]);
    expect(runtime ? d.applied : d.needsRestart).toEqual([path]);
    expect(runtime ? d.needsRestart : d.applied).toEqual([]);
  });

  it('covers every top-level key of the schema; keys added later need a restart', () => {
    const keys = Object.keys(ConfigSchema.shape);
    for (const key of Object.keys(BY_KEY)) expect(keys).toContain(key);
    for (const key of keys) {
      if (BY_KEY[key]) continue;
      // A key this table does not know (added after it was written): never silently applied.
      const d = change((c) => void ((c as unknown as Record<string, unknown>)[key] = { __changed: true }));
      expect(d.changes.length, key).toBeGreaterThan(0);
      expect(d.applied, key).toEqual([]);
      expect(d.needsRestart.every((p) => p === key || p.startsWith(`${key}.`)), key).toBe(true);
    }
    // Every runtime key is reachable from a top-level key of the schema.
    for (const k of RUNTIME_KEYS) expect(keys).toContain(k.split('.')[0]);
  });

  it('names cameras by id: added, removed and changed', () => {
    const d = change((c) => {
      c.cameras = [
        { id: 'yard', enabled: false, source: c.cameras[1]!.source },
        { id: 'door', enabled: true, source: { type: 'synthetic', fps: 2, width: 64, height: 48 } },
      ];
    });
    expect(d.changes).toEqual([
      { path: 'cameras[gate]', kind: 'removed', runtime: true },
      { path: 'cameras[yard].enabled', kind: 'changed', runtime: true },
      { path: 'cameras[door]', kind: 'added', runtime: true },
    ]);
    expect(d.cameras).toEqual({ added: ['door'], removed: ['gate'], changed: ['yard'] });
    expect(d.needsRestart).toEqual([]);
  });

  it('ignores a change of camera order (ids, not positions)', () => {
    const d = change((c) => void c.cameras.reverse());
    expect(d.changes).toEqual([]);
  });

  it('names a changed source type at the source, and a whole new source key', () => {
    const d = change((c) => void (c.cameras[1]!.source = { type: 'directory', path: './y', fps: 1, loop: false, realtime: false, max_file_bytes: 33_554_432, read_timeout_ms: 5_000 }));
    expect(d.changes.map((x) => x.path)).toEqual([
      'cameras[yard].source.type',
      'cameras[yard].source.width',
      'cameras[yard].source.height',
      'cameras[yard].source.path',
      'cameras[yard].source.loop',
      'cameras[yard].source.realtime',
      'cameras[yard].source.max_file_bytes',
      'cameras[yard].source.read_timeout_ms',
    ]);
    expect(d.changes.map((x) => x.kind)).toEqual(['changed', 'removed', 'removed', 'added', 'added', 'added', 'added', 'added']);
    expect(d.cameras.changed).toEqual(['yard']);
  });

  it('names watch rules by position, added and removed ones too', () => {
    expect(change((c) => void c.watch.push({ label: 'green', min_score: 0.5, frames: 3 })).changes).toEqual([{ path: 'watch[2]', kind: 'added', runtime: true }]);
    expect(change((c) => void c.watch.pop()).changes).toEqual([{ path: 'watch[1]', kind: 'removed', runtime: true }]);
    expect(change((c) => void (c.watch[0]!.cameras = ['gate'])).changes).toEqual([{ path: 'watch[0].cameras', kind: 'added', runtime: true }]);
  });

  it('names nested keys exactly, and value lists as a whole', () => {
    expect(change((c) => void (c.model.execution_providers = ['cpu'])).needsRestart).toEqual(['model.execution_providers']);
    expect(change((c) => void (c.mqtt.queue.max_messages = 5)).needsRestart).toEqual(['mqtt.queue.max_messages']);
    expect(change((c) => void (c.model.preprocess = { size: 112 })).changes).toEqual([{ path: 'model.preprocess', kind: 'added', runtime: false }]);
    expect(change((c) => void (c.publish.only_on_change = false)).changes).toEqual([{ path: 'publish.only_on_change', kind: 'changed', runtime: true }]);
    expect(change((c) => void (c.publish.only_on_change = { hysteresis: 0.1, heartbeat: 5 })).applied).toEqual(['publish.only_on_change.heartbeat']);
    expect(change((c) => void (c.mqtt.password = 's3cret')).changes).toEqual([{ path: 'mqtt.password', kind: 'added', runtime: false }]);
  });

  it('splits a mixed reload into applied and needs-restart, in file order', () => {
    const d = change((c) => {
      c.model.path = 'new.onnx';
      c.mqtt.url = 'mqtt://elsewhere:1883';
      c.publish.min_score = 0.2;
      c.log.level = 'debug';
    });
    expect(d.applied).toEqual(['publish.min_score', 'log.level']);
    expect(d.needsRestart).toEqual(['model.path', 'mqtt.url']);
  });
});

describe('mergeRuntime', () => {
  it('takes the runtime keys from the new config and keeps the rest running', () => {
    const next = base();
    next.model.path = 'new.onnx';
    next.publish.top_k = 1;
    next.cameras.pop();
    next.log.level = 'debug';
    const merged = mergeRuntime(base(), next);
    expect(merged.model.path).toBe('m.onnx');
    expect(merged.publish.top_k).toBe(1);
    expect(merged.cameras.map((c) => c.id)).toEqual(['gate']);
    expect(merged.log.level).toBe('debug');
    // What is left is exactly what needs a restart: the next reload reports it again.
    const again = diffConfig(merged, next);
    expect(again.applied).toEqual([]);
    expect(again.needsRestart).toEqual(['model.path']);
  });

  it('applies only the keys given (a key that failed to apply keeps its running value)', () => {
    const next = base();
    next.publish.top_k = 1;
    next.stats_interval = 1;
    const merged = mergeRuntime(base(), next, ['publish']);
    expect(merged.publish.top_k).toBe(1);
    expect(merged.stats_interval).toBe(30);
  });

  it('does not share objects with either input', () => {
    const active = base();
    const next = base();
    next.publish.top_k = 2;
    const merged = mergeRuntime(active, next);
    next.publish.top_k = 4;
    active.model.labels = 'changed.txt';
    expect(merged.publish.top_k).toBe(2);
    expect(merged.model.labels).toBe('l.txt');
  });
});

describe('helpers', () => {
  it('runtimeKeyOf matches whole segments only', () => {
    expect(runtimeKeyOf('publish.top_k')).toBe('publish');
    expect(runtimeKeyOf('cameras[gate].source.fps')).toBe('cameras');
    expect(runtimeKeyOf('log.level')).toBe('log.level');
    expect(runtimeKeyOf('publisher')).toBeUndefined();
    expect(runtimeKeyOf('model.path')).toBeUndefined();
  });

  it('sameValue treats a missing key like an undefined one, and order in lists as significant', () => {
    expect(sameValue({ a: 1, b: undefined }, { a: 1 })).toBe(true);
    expect(sameValue([1, 2], [2, 1])).toBe(false);
    expect(sameValue({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] })).toBe(true);
    expect(sameValue(false, { hysteresis: 0 })).toBe(false);
  });
});
