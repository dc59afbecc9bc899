import { ConfigSchema, type Config } from './schema.js';
import { runtimeKeyPaths } from './reload-marks.js';

// What a configuration reload changes, and which of it the daemon can apply while running.
// Pure: no I/O, so every classification is unit-tested.

/**
 * Key paths applied at runtime: those marked `.meta(RELOAD_AT_RUNTIME)` in the config schema
 * (a change under one of them is applied; a change anywhere else is reported as needing a
 * restart). Unmarked keys, including ones added to the schema later, default to "restart", so
 * a new setting is never silently ignored.
 */
export const RUNTIME_KEYS: readonly string[] = runtimeKeyPaths(ConfigSchema);

export type ChangeKind = 'added' | 'removed' | 'changed';

export interface ConfigChange {
  /**
   * The key path, as in validation errors: `publish.top_k`, `watch[1].min_score`. Cameras are
   * named by id, not index, because removing one shifts the others: `cameras[yard].source.fps`.
   */
  path: string;
  kind: ChangeKind;
  runtime: boolean;
}

export interface ConfigDiff {
  changes: ConfigChange[];
  /** Paths of the changes applied at runtime. */
  applied: string[];
  /** Paths of the changes that take effect only after a restart. */
  needsRestart: string[];
  /** Camera ids by what happens to them; a changed camera is restarted. */
  cameras: { added: string[]; removed: string[]; changed: string[] };
}

type Segment = { key: string } | { index: number } | { id: string };

interface RawChange {
  path: Segment[];
  kind: ChangeKind;
}

/** The changes from the running configuration `active` to a newly loaded `next`. */
export function diffConfig(active: Config, next: Config): ConfigDiff {
  const raw: RawChange[] = [];
  walk(active, next, [], raw);
  const changes = raw.map((c) => ({ path: formatSegments(c.path), kind: c.kind, runtime: isRuntime(c.path) }));
  const cameras = { added: [] as string[], removed: [] as string[], changed: [] as string[] };
  for (const c of raw) {
    const [top, cam] = c.path;
    if (!top || !('key' in top) || top.key !== 'cameras' || !cam || !('id' in cam)) continue;
    const list = c.path.length === 2 && c.kind !== 'changed' ? cameras[c.kind] : cameras.changed;
    if (!list.includes(cam.id)) list.push(cam.id);
  }
  return {
    changes,
    applied: changes.filter((c) => c.runtime).map((c) => c.path),
    needsRestart: changes.filter((c) => !c.runtime).map((c) => c.path),
    cameras,
  };
}

/**
 * The configuration in force after a reload: `active` with the runtime keys (all of them, or
 * the `keys` that were applied successfully) taken from `next`. Keys needing a restart keep
 * their running value, so the next reload reports them again until the daemon is restarted.
 */
export function mergeRuntime(active: Config, next: Config, keys: readonly string[] = RUNTIME_KEYS): Config {
  const merged = structuredClone(active) as unknown as Record<string, unknown>;
  for (const key of keys) {
    const path = key.split('.');
    const value = getPath(next, path);
    setPath(merged, path, value === undefined ? undefined : structuredClone(value));
  }
  return merged as unknown as Config;
}

/** The runtime key a change's path (`publish.top_k`, `cameras[yard].source`) falls under; undefined: needs a restart. */
export function runtimeKeyOf(path: string): string | undefined {
  return RUNTIME_KEYS.find((k) => path === k || path.startsWith(`${k}.`) || path.startsWith(`${k}[`));
}

/** Deep equality of JSON-like values; a missing key equals an undefined one. */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => sameValue(x, b[i]));
  }
  if (!isPlainObject(a) || !isPlainObject(b)) return false;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) if (!sameValue(a[k], b[k])) return false;
  return true;
}

function walk(a: unknown, b: unknown, path: Segment[], out: RawChange[]): void {
  if (sameValue(a, b)) return;
  if (a === undefined) return void out.push({ path, kind: 'added' });
  if (b === undefined) return void out.push({ path, kind: 'removed' });
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = [...Object.keys(a), ...Object.keys(b).filter((k) => !(k in a))];
    for (const key of keys) walk(a[key], b[key], [...path, { key }], out);
    return;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    if (path.length === 1 && isKey(path[0], 'cameras') && a.every(hasId) && b.every(hasId)) return walkById(a, b, path, out);
    // Lists of objects (watch rules) by position; lists of values (providers, mean) as a whole.
    if (a.every(isPlainObject) && b.every(isPlainObject)) {
      for (let i = 0; i < Math.max(a.length, b.length); i++) walk(a[i], b[i], [...path, { index: i }], out);
      return;
    }
  }
  out.push({ path, kind: 'changed' });
}

function walkById(a: { id: string }[], b: { id: string }[], path: Segment[], out: RawChange[]): void {
  const before = new Map(a.map((c) => [c.id, c]));
  const after = new Map(b.map((c) => [c.id, c]));
  for (const [id, cam] of before) walk(cam, after.get(id), [...path, { id }], out);
  for (const [id, cam] of after) if (!before.has(id)) walk(undefined, cam, [...path, { id }], out);
}

function isRuntime(path: Segment[]): boolean {
  const keys: string[] = [];
  for (const seg of path) {
    if (!('key' in seg)) break;
    keys.push(seg.key);
  }
  // Matched on object keys only: a camera id or list index cannot pose as a key. A change
  // above a runtime key (a whole `log` section) needs a restart; sections are always present
  // after parsing, so that does not arise in practice.
  const dotted = keys.join('.');
  return RUNTIME_KEYS.some((k) => dotted === k || dotted.startsWith(`${k}.`));
}

function formatSegments(path: Segment[]): string {
  let out = '';
  for (const seg of path) {
    if ('key' in seg) out += out ? `.${seg.key}` : seg.key;
    else if ('index' in seg) out += `[${seg.index}]`;
    else out += `[${seg.id}]`;
  }
  return out || '(root)';
}

function isKey(seg: Segment | undefined, key: string): boolean {
  return seg !== undefined && 'key' in seg && seg.key === key;
}

function hasId(x: unknown): x is { id: string } {
  return isPlainObject(x) && typeof x.id === 'string';
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function getPath(root: unknown, path: readonly string[]): unknown {
  let node = root;
  for (const seg of path) node = isPlainObject(node) ? node[seg] : undefined;
  return node;
}

function setPath(root: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = root;
  for (const seg of path.slice(0, -1)) {
    const next = node[seg];
    if (!isPlainObject(next)) node[seg] = {};
    node = node[seg] as Record<string, unknown>;
  }
  const last = path[path.length - 1]!;
  if (value === undefined) delete node[last];
  else node[last] = value;
}
