import { parse as parseYamlValue } from 'yaml';
import { formatPath } from './config-error.js';

/**
 * Environment overrides: EDGE_CLASSIFIER__<KEY>__<KEY>... = value. Double underscores separate
 * path segments because keys themselves contain single underscores (base_topic); segments are
 * lower-cased; numeric segments index arrays (EDGE_CLASSIFIER__CAMERAS__0__SOURCE__FPS=2).
 * Values are parsed as YAML scalars/flows, so `5`, `true` and `[cuda, cpu]` get their types.
 */
export const ENV_PREFIX = 'EDGE_CLASSIFIER__';

/**
 * An index may address an existing entry or append one right after the last. Without this,
 * `CAMERAS__4294967294__ID=x` makes a 4-billion-slot sparse array that validation then walks
 * (seen: 2.2 GB and no end); a gap would also leave holes that read as confusing errors.
 */
export const MAX_LIST_LENGTH = 1_000;

export interface EnvOverride {
  variable: string;
  path: (string | number)[];
  value: unknown;
}

export function collectEnvOverrides(env: NodeJS.ProcessEnv): EnvOverride[] {
  const out: EnvOverride[] = [];
  for (const [variable, raw] of Object.entries(env)) {
    if (!variable.startsWith(ENV_PREFIX) || raw === undefined) continue;
    const path = variable
      .slice(ENV_PREFIX.length)
      .split('__')
      .filter((s) => s.length > 0)
      .map((s) => (/^\d+$/.test(s) ? Number(s) : s.toLowerCase()));
    if (path.length === 0) continue;
    out.push({ variable, path, value: parseEnvValue(raw) });
  }
  // Deterministic regardless of environment order: shorter paths first, so a whole-object
  // override is refined by more specific ones; equal lengths by index, so 0 comes before 1.
  return out.sort((a, b) => a.path.length - b.path.length || comparePaths(a.path, b.path) || a.variable.localeCompare(b.variable));
}

function comparePaths(a: (string | number)[], b: (string | number)[]): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (typeof x === 'number' && typeof y === 'number' && x !== y) return x - y;
  }
  return 0;
}

function parseEnvValue(raw: string): unknown {
  try {
    return parseYamlValue(raw) as unknown;
  } catch {
    return raw;
  }
}

export interface AppliedOverrides {
  doc: unknown;
  /** One line per override that could not be written in, naming its variable and key path. */
  problems: string[];
}

/** Returns a copy of `doc` with the overrides written in, creating objects/arrays on the way. */
export function applyEnvOverrides(doc: unknown, overrides: EnvOverride[]): AppliedOverrides {
  const root: unknown = structuredClone(doc ?? {});
  const problems: string[] = [];
  for (const o of overrides) {
    const refused = applyOne(root as Container, o);
    if (refused) problems.push(`${formatPath(refused.at)}: ${refused.why} (set by ${o.variable})`);
  }
  return { doc: root, problems };
}

type Container = Record<string | number, unknown> | unknown[];

/** Writes one override in; on refusal, says why and at which segment. */
function applyOne(root: Container, { path, value }: EnvOverride): { at: (string | number)[]; why: string } | undefined {
  let node = root;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i] as string | number;
    const problem = segmentProblem(node, seg);
    if (problem) return { at: path.slice(0, i + 1), why: problem };
    const slots = node as Record<string | number, unknown>;
    if (i === path.length - 1) {
      slots[seg] = value;
      return undefined;
    }
    const next = slots[seg];
    if (next === null || typeof next !== 'object') slots[seg] = typeof path[i + 1] === 'number' ? [] : {};
    node = slots[seg] as Container;
  }
  return undefined;
}

function segmentProblem(node: Container, seg: string | number): string | undefined {
  if (!Array.isArray(node)) return undefined;
  if (typeof seg !== 'number') return `expected a list index here, got "${seg}"`;
  const last = Math.min(node.length, MAX_LIST_LENGTH - 1);
  if (seg > last) return `list index ${seg} is out of range: this list has ${node.length} entries, so the index must be 0 to ${last}`;
  return undefined;
}
