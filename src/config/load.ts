import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigSchema, type Config } from './schema.js';
import { applyEnvOverrides, collectEnvOverrides } from './env-overrides.js';

/** Exit status for an unusable configuration (sysexits.h EX_CONFIG). */
export const EX_CONFIG = 78;

/** A configuration that cannot be used; each problem names its key path and what was expected. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid configuration in ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out || '(root)';
}

function describeIssue(issue: z.core.$ZodIssue, envVars: Map<string, string>): string {
  const at = formatPath(issue.path);
  const fromEnv = envVars.get(at);
  const suffix = fromEnv ? ` (set by ${fromEnv})` : '';
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => `"${k}"`).join(', ');
    return `${at}: unknown key${issue.keys.length > 1 ? 's' : ''} ${keys}${suffix}`;
  }
  return `${at}: ${issue.message}${suffix}`;
}

/** Parses YAML text, applies environment overrides and validates; throws ConfigError. */
export function parseConfig(text: string, source: string, env: NodeJS.ProcessEnv = {}): Config {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(source, doc.errors.map((e) => `YAML syntax: ${e.message.split('\n')[0] ?? e.message}`));
  }
  const raw: unknown = doc.toJS();
  if (raw !== null && raw !== undefined && (typeof raw !== 'object' || Array.isArray(raw))) {
    throw new ConfigError(source, ['(root): expected a mapping of keys (device_id, model, cameras, ...)']);
  }
  const overrides = collectEnvOverrides(env);
  const merged = applyEnvOverrides(raw ?? {}, overrides);
  const result = ConfigSchema.safeParse(merged);
  if (!result.success) {
    const envVars = new Map(overrides.map((o) => [formatPath(o.path), o.variable]));
    throw new ConfigError(source, result.error.issues.map((i) => describeIssue(i, envVars)));
  }
  return result.data;
}

export async function loadConfigFile(path: string, env: NodeJS.ProcessEnv = {}): Promise<Config> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`cannot read the file: ${(err as Error).message}`]);
  }
  return parseConfig(text, path, env);
}

/** The JSON Schema of the config file, generated from the zod schema (input side: defaults optional). */
export function configJsonSchema(z: typeof import('zod').z): unknown {
  return z.toJSONSchema(ConfigSchema, { io: 'input', unrepresentable: 'any' });
}
