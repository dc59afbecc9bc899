import { tmpdir } from 'node:os';
import { loadConfigFile } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { Daemon } from '../daemon/daemon.js';
import { createLogger } from '../core/logger.js';
import { LogLevels } from '../core/log-levels.js';
import type { ConfigSource } from '../daemon/config-reloader.js';
import type { PredictionPayload } from '../mqtt/payloads.js';
import { UsageError, parseCliArgs, type CliContext } from './context.js';

export const RUN_USAGE = `run --config FILE
  Runs the daemon. FILE defaults to $EDGE_CLASSIFIER_CONFIG, then /etc/edge-classifier/config.yaml.`;

/** The config file `run` reads (at start, and again on every reload). */
export function runConfigPath(argv: string[], env: NodeJS.ProcessEnv): string {
  const { values } = parseCliArgs({ args: argv, options: { config: { type: 'string', short: 'c' } } }, RUN_USAGE);
  const path = values.config ?? env.EDGE_CLASSIFIER_CONFIG ?? '/etc/edge-classifier/config.yaml';
  if (!path) throw new UsageError(RUN_USAGE);
  return path;
}

/** Parses `run` arguments and loads the config (ConfigError -> exit 78 at the entry point). */
export async function loadRunConfig(argv: string[], env: NodeJS.ProcessEnv): Promise<Config> {
  return loadConfigFile(runConfigPath(argv, env), env);
}

export interface RunOptions {
  config: Config;
  ctx: CliContext;
  /** Resolves with the signal name when the process is asked to stop. */
  shutdown: Promise<string>;
  onPrediction?: (payload: PredictionPayload) => void;
  /** Resolves early (e.g. the demo's --frames): stops like a signal would. */
  done?: Promise<string>;
  /** Reloads: `requests` subscribes to them (SIGHUP at the entry point), `source` is what they read. Absent (the demo): none. */
  reload?: { requests: (listener: () => void) => void; source: ConfigSource };
}

/** Starts the daemon, waits for a shutdown request, stops it gracefully. Returns the exit status. */
export async function runDaemon(opts: RunOptions): Promise<number> {
  const { config, ctx } = opts;
  // Tracks every child logger, so a reload's log.level reaches the module and camera loggers too.
  const levels = new LogLevels();
  const logger = createLogger({ level: config.log.level, onChild: levels.onChild, ...(ctx.logStream ? { stream: ctx.logStream } : {}) });
  const daemon = new Daemon({
    logger,
    clock: ctx.clock,
    config,
    version: ctx.version,
    workerUrl: ctx.workerUrl,
    tmpRoot: ctx.env.TMPDIR ?? tmpdir(),
    env: ctx.env,
    ...(opts.onPrediction ? { onPrediction: opts.onPrediction } : {}),
    setLogLevel: (level) => levels.set(logger, level),
  });
  // Reload requests: held while starting, ignored once stopping, serialized by the daemon.
  let phase: 'starting' | 'running' | 'stopping' = 'starting';
  let deferred = false;
  const reload = (source: ConfigSource): void => {
    if (phase === 'stopping') return void logger.info('config reload ignored: shutting down');
    if (phase === 'starting') {
      deferred = true;
      return void logger.info('config reload requested while starting; it runs once started');
    }
    void daemon.reload(source).catch((err: unknown) => logger.error({ err: (err as Error).message }, 'config reload failed'));
  };
  const reloads = opts.reload;
  reloads?.requests(() => reload(reloads.source));
  const stopRequest = Promise.race([opts.shutdown, ...(opts.done ? [opts.done] : [])]);
  // A shutdown request while starting (waiting for a first model, downloading or validating it)
  // stops the start: systemd sends one SIGTERM and waits, it does not ask twice.
  const starting = daemon.start().then(
    () => ({ started: true as const }),
    (err: unknown) => ({ started: false as const, err }),
  );
  const first = await Promise.race([starting, stopRequest.then((reason) => ({ reason }))]);
  if ('started' in first && !first.started) {
    logger.fatal({ err: (first.err as Error).message }, 'cannot start');
    await daemon.stop();
    throw first.err;
  }
  if ('reason' in first) {
    logger.info({ reason: first.reason }, 'shutting down while starting');
  } else {
    phase = 'running';
    if (deferred && reloads) reload(reloads.source);
    logger.info({ reason: await stopRequest }, 'shutting down');
  }
  phase = 'stopping';
  // A reload may have changed it.
  const timeoutMs = daemon.activeConfig.shutdown_timeout_ms;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
  const outcome = await Promise.race([daemon.stop().then(() => 'stopped' as const), deadline]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    logger.error({ timeoutMs }, 'shutdown took too long; exiting anyway');
    return 1;
  }
  return 0;
}
