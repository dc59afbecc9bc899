import { PreprocessSchema, type PreprocessSpec } from '../config/schema.js';
import { describeIssues } from '../updates/manifest.js';
import { UsageError } from './context.js';

/** `--preprocess '{"size":192}'`: single fields of the preset, as in the config's model.preprocess. */
export function parsePreprocess(text: string | undefined): Partial<PreprocessSpec> | undefined {
  if (text === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new UsageError(`--preprocess must be a JSON object, e.g. '{"size":192,"resize":219}', not ${text}`);
  }
  const parsed = PreprocessSchema.partial().safeParse(json);
  if (!parsed.success) throw new UsageError(`--preprocess: ${describeIssues(parsed.error)}`);
  return parsed.data;
}
