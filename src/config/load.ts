import { open } from 'node:fs/promises';
import { parseDocument, visit, isPair, isScalar, type Document } from 'yaml';
import type { z } from 'zod';
import { ConfigSchema, type Config } from './schema.js';
import { applyEnvOverrides, collectEnvOverrides } from './env-overrides.js';
import { ConfigError, formatPath } from './config-error.js';

export { ConfigError, EX_CONFIG, formatPath } from './config-error.js';

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

/**
 * The document as plain data. The yaml library refuses aliases that expand without bound
 * ("billion laughs") by throwing from toJS(); that is a configuration problem like any other,
 * so it becomes a ConfigError naming where the first alias sits, not a stack trace and exit 1.
 */
function toPlainData(doc: Document, source: string): unknown {
  try {
    return doc.toJS();
  } catch (err) {
    const at = firstAliasPath(doc);
    const why = `YAML aliases expand too far (the yaml library's guard, maxAliasCount 100: ${(err as Error).message})`;
    throw new ConfigError(source, [`${at}: ${why}; write the values out or use fewer aliases`]);
  }
}

/** Key path of the first alias (`*name`) in the document, for the error message. */
function firstAliasPath(doc: Document): string {
  let found = '(root)';
  visit(doc, {
    Alias(_key, _node, ancestors) {
      const keys = ancestors.filter(isPair).map((p) => (isScalar(p.key) ? String(p.key.value) : '?'));
      found = formatPath(keys);
      return visit.BREAK;
    },
  });
  return found;
}

/** Parses YAML text, applies environment overrides and validates; throws ConfigError. */
export function parseConfig(text: string, source: string, env: NodeJS.ProcessEnv = {}): Config {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(source, doc.errors.map((e) => `YAML syntax: ${e.message.split('\n')[0] ?? e.message}`));
  }
  const raw = toPlainData(doc, source);
  if (raw !== null && raw !== undefined && (typeof raw !== 'object' || Array.isArray(raw))) {
    throw new ConfigError(source, ['(root): expected a mapping of keys (device_id, model, cameras, ...)']);
  }
  const overrides = collectEnvOverrides(env);
  const applied = applyEnvOverrides(raw ?? {}, overrides);
  if (applied.problems.length > 0) throw new ConfigError(source, applied.problems);
  const result = ConfigSchema.safeParse(applied.doc);
  if (!result.success) {
    const envVars = new Map(overrides.map((o) => [formatPath(o.path), o.variable]));
    throw new ConfigError(source, result.error.issues.map((i) => describeIssue(i, envVars)));
  }
  return result.data;
}

/**
 * Far above any real config (a few KB), far below what hurts: parsing YAML costs ~40 bytes of
 * memory per byte of text (a 60 MB file took 2.2 GB and 8 s here), more than a Pi has.
 */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

export async function loadConfigFile(path: string, env: NodeJS.ProcessEnv = {}): Promise<Config> {
  let text: string;
  try {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      if (size > MAX_CONFIG_BYTES) {
        throw new ConfigError(path, [`(root): the file is ${size} bytes; a configuration is at most ${MAX_CONFIG_BYTES} (is this the right file?)`]);
      }
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(path, [`cannot read the file: ${(err as Error).message}`]);
  }
  return parseConfig(text, path, env);
}

/** The JSON Schema of the config file, generated from the zod schema (input side: defaults optional). */
export function configJsonSchema(z: typeof import('zod').z): unknown {
  return z.toJSONSchema(ConfigSchema, { io: 'input', unrepresentable: 'any' });
}
