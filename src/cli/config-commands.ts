import { access } from 'node:fs/promises';
import { z } from 'zod';
import { ConfigError, configJsonSchema, loadConfigFile } from '../config/load.js';
import { UsageError, type CliContext } from './context.js';

export const CONFIG_USAGE = `config check FILE   validate a config file (and that the files it names exist)
config schema       print the config's JSON Schema`;

/** Files the config points at; a typo here is the most common broken deployment. */
async function missingFiles(cfg: Awaited<ReturnType<typeof loadConfigFile>>): Promise<string[]> {
  const checks: [string, string][] = [];
  if (cfg.model.path) checks.push(['model.path', cfg.model.path]);
  if (cfg.model.labels) checks.push(['model.labels', cfg.model.labels]);
  cfg.cameras.forEach((c, i) => {
    if (c.source.type === 'directory') checks.push([`cameras[${i}].source.path`, c.source.path]);
  });
  const problems: string[] = [];
  for (const [key, path] of checks) {
    await access(path).catch(() => problems.push(`${key}: no such file or directory: ${path}`));
  }
  return problems;
}

export async function configCommand(argv: string[], ctx: CliContext): Promise<number> {
  const [sub, file] = argv;
  if (sub === 'schema') {
    ctx.stdout(JSON.stringify(configJsonSchema(z), null, 2));
    return 0;
  }
  if (sub === 'check' && file) {
    const cfg = await loadConfigFile(file, ctx.env);
    const problems = await missingFiles(cfg);
    if (problems.length > 0) throw new ConfigError(file, problems);
    ctx.stdout(`${file}: ok (device ${cfg.device_id}, ${cfg.cameras.length} camera(s), model ${cfg.model.path})`);
    return 0;
  }
  throw new UsageError(CONFIG_USAGE);
}
