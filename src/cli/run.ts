import { parseArgs } from 'node:util';
import { tmpdir } from 'node:os';
import { loadConfigFile } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { Daemon } from '../daemon/daemon.js';
import { createLogger } from '../ops/logger.js';
import type { PredictionPayload } from '../mqtt/payloads.js';
import { UsageError, type CliContext } from './context.js';

export const RUN_USAGE = `run --config FILE
  Runs the daemon. FILE defaults to $EDGE_CLASSIFIER_CONFIG, then /etc/edge-classifier/config.yaml.`;

/** Parses `run` arguments and loads the config (ConfigError -> exit 78 at the entry point). */
export async function loadRunConfig(argv: string[], env: NodeJS.ProcessEnv): Promise<Config> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' } } });
  const path = values.config ?? env.EDGE_CLASSIFIER_CONFIG ?? '/etc/edge-classifier/config.yaml';
  if (!path) throw new UsageError(RUN_USAGE);
  return loadConfigFile(path, env);
}

export interface RunOptions {
  config: Config;
  ctx: CliContext;
  /** Resolves with the signal name when the process is asked to stop. */
  shutdown: Promise<string>;
  onPrediction?: (payload: PredictionPayload) => void;
  /** Resolves early (e.g. the demo's --frames): stops like a signal would. */
  done?: Promise<string>;
}

/** Starts the daemon, waits for a shutdown request, stops it gracefully. Returns the exit status. */
export async function runDaemon(opts: RunOptions): Promise<number> {
  const { config, ctx } = opts;
  const logger = ctx.logStream ? createLogger({ level: config.log.level, stream: ctx.logStream }) : createLogger({ level: config.log.level });
  const daemon = new Daemon({
    logger,
    clock: ctx.clock,
    config,
    version: ctx.version,
    workerUrl: ctx.workerUrl,
    tmpRoot: ctx.env.TMPDIR ?? tmpdir(),
    env: ctx.env,
    ...(opts.onPrediction ? { onPrediction: opts.onPrediction } : {}),
  });
  try {
    await daemon.start();
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, 'cannot start');
    await daemon.stop();
    throw err;
  }
  const reason = await Promise.race([opts.shutdown, ...(opts.done ? [opts.done] : [])]);
  logger.info({ reason }, 'shutting down');
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), config.shutdown_timeout_ms)));
  const outcome = await Promise.race([daemon.stop().then(() => 'stopped' as const), deadline]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    logger.error({ timeoutMs: config.shutdown_timeout_ms }, 'shutdown took too long; exiting anyway');
    return 1;
  }
  return 0;
}
