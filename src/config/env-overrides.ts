import { parse as parseYamlValue } from 'yaml';

/**
 * Environment overrides: EDGE_CLASSIFIER__<KEY>__<KEY>... = value. Double underscores separate
 * path segments because keys themselves contain single underscores (base_topic); segments are
 * lower-cased; numeric segments index arrays (EDGE_CLASSIFIER__CAMERAS__0__SOURCE__FPS=2).
 * Values are parsed as YAML scalars/flows, so `5`, `true` and `[cuda, cpu]` get their types.
 */
export const ENV_PREFIX = 'EDGE_CLASSIFIER__';

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
  // override is refined by more specific ones.
  return out.sort((a, b) => a.path.length - b.path.length || a.variable.localeCompare(b.variable));
}

function parseEnvValue(raw: string): unknown {
  try {
    return parseYamlValue(raw) as unknown;
  } catch {
    return raw;
  }
}

/** Returns a copy of `doc` with the overrides written in, creating objects/arrays on the way. */
export function applyEnvOverrides(doc: unknown, overrides: EnvOverride[]): unknown {
  const root: unknown = structuredClone(doc ?? {});
  for (const { path, value } of overrides) {
    let node = root as Record<string | number, unknown>;
    path.forEach((seg, i) => {
      if (i === path.length - 1) {
        node[seg] = value;
        return;
      }
      const next = node[seg];
      if (next === null || typeof next !== 'object') {
        node[seg] = typeof path[i + 1] === 'number' ? [] : {};
      }
      node = node[seg] as Record<string | number, unknown>;
    });
  }
  return root;
}
