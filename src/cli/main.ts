import { createRequire } from 'node:module';
import { ConfigError, EX_CONFIG, loadConfigFile } from '../config/load.js';
import { createLogger } from '../core/logger.js';
import { createSystemClock } from '../core/clock.js';
import { defaultWorkerUrl } from '../inference/worker-url.js';
import { ModelMismatchError } from '../inference/model-check.js';
import { ModelLoadError } from '../inference/inference-worker.js';
import { ModelFileError } from '../inference/model-identity.js';
import { LabelsFileError } from '../vision/labels.js';
import { classifyCommand, CLASSIFY_USAGE } from './classify.js';
import { configCommand, CONFIG_USAGE } from './config-commands.js';
import { loadRunConfig, runConfigPath, runDaemon, RUN_USAGE } from './run.js';
import { demoCommand, DEMO_USAGE } from './demo.js';
import { modelCommand, MODEL_USAGE } from './model.js';
import { releaseCommand, RELEASE_USAGE } from './release.js';
import { benchCommand, BENCH_USAGE } from './bench.js';
import { UsageError, type CliContext } from './context.js';

// The entry point: the only place that touches process.exit, signals and the real environment.

const EX_USAGE = 64;
const version = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

const USAGE = `edge-classifier ${version}
usage: edge-classifier <command>
  ${CLASSIFY_USAGE}
  ${RUN_USAGE}
  ${DEMO_USAGE}
  ${MODEL_USAGE}
  ${CONFIG_USAGE.replace(/\n/g, '\n  ')}
  ${RELEASE_USAGE.replace(/\n/g, '\n  ')}
  ${BENCH_USAGE.replace(/\n/g, '\n  ')}
  help <command>, <command> --help: that command's usage`;

/** Each command's usage, for `edge-classifier <command> --help` and `edge-classifier help <command>`. */
const COMMAND_USAGE: Record<string, string> = {
  classify: CLASSIFY_USAGE,
  run: RUN_USAGE,
  demo: DEMO_USAGE,
  model: MODEL_USAGE,
  config: CONFIG_USAGE,
  release: RELEASE_USAGE,
  bench: BENCH_USAGE,
};

/** --help or -h among a command's arguments (before a `--`, after which arguments are not options). */
function wantsHelp(args: string[]): boolean {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

/** What `--help` prints: the command's usage, as a usage error shows it (parseCliArgs). */
const commandHelp = (command: string): string => `usage: edge-classifier ${COMMAND_USAGE[command]}`;

/**
 * The first of `signals` resolves the promise (graceful stop); a second one exits at once. The
 * daemon reloads on SIGHUP; the demo, run from a terminal, stops when the terminal hangs up.
 */
function shutdownSignal(signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT']): Promise<string> {
  return new Promise((resolve) => {
    let received = false;
    const onSignal = (sig: NodeJS.Signals): void => {
      if (received) {
        process.stderr.write(`edge-classifier: second ${sig}, exiting now\n`);
        // Die by the signal itself: process.exit() would run teardown while onnxruntime may be
        // mid-run in the worker, which aborts the process (SIGABRT) instead.
        process.removeAllListeners(sig);
        process.kill(process.pid, sig);
        return;
      }
      received = true;
      resolve(sig);
    };
    for (const sig of signals) process.on(sig, onSignal);
  });
}

/**
 * SIGHUP (`systemctl reload`): a configuration reload. The handler goes in at once, since
 * SIGHUP's default action kills the process; a request before anyone listens is kept for the
 * listener. Never throws out of the handler.
 */
function reloadSignal(): (listener: () => void) => void {
  let listener: (() => void) | undefined;
  let early = false;
  const deliver = (): void => {
    try {
      listener?.();
    } catch (err) {
      process.stderr.write(`edge-classifier: SIGHUP: ${(err as Error).message}\n`);
    }
  };
  process.on('SIGHUP', () => {
    if (listener) deliver();
    else early = true;
  });
  return (l) => {
    listener = l;
    if (early) {
      early = false;
      deliver();
    }
  };
}

/** Exit status by error class: 64 bad usage, 78 a configuration (or the model and labels it names) that cannot be used. */
function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError) return EX_USAGE;
  const unusable = [ConfigError, ModelMismatchError, ModelLoadError, ModelFileError, LabelsFileError];
  if (unusable.some((cls) => err instanceof cls)) return EX_CONFIG;
  return 1;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  // A reader that goes away (`| head`) must not crash the command with EPIPE.
  let stdoutOpen = true;
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') stdoutOpen = false;
  });
  const ctx: CliContext = {
    logger: createLogger({ level: 'warn', stream: process.stderr }),
    clock: createSystemClock(),
    workerUrl: defaultWorkerUrl(),
    env: process.env,
    stdout: (l) => void (stdoutOpen && process.stdout.write(`${l}\n`)),
    stderr: (l) => void process.stderr.write(`${l}\n`),
    version,
  };
  // Help before anything else: `run --config FILE --help` prints the usage and starts nothing.
  if (command !== undefined && Object.hasOwn(COMMAND_USAGE, command) && wantsHelp(rest)) {
    ctx.stdout(commandHelp(command));
    return 0;
  }
  switch (command) {
    case 'classify':
      return classifyCommand(rest, ctx);
    case 'run': {
      const requests = reloadSignal();
      const config = await loadRunConfig(rest, ctx.env);
      // A reload reads the same file through the same loader (environment overrides included).
      const file = runConfigPath(rest, ctx.env);
      return runDaemon({ config, ctx, shutdown: shutdownSignal(), reload: { requests, source: { file, load: () => loadConfigFile(file, ctx.env) } } });
    }
    case 'demo':
      return demoCommand(rest, ctx, shutdownSignal(['SIGTERM', 'SIGINT', 'SIGHUP']));
    case 'config':
      return configCommand(rest, ctx);
    case 'model':
      return modelCommand(rest, ctx);
    case 'release':
      return releaseCommand(rest, ctx);
    case 'bench':
      return benchCommand(rest, ctx);
    case '--version':
    case '-v':
      ctx.stdout(version);
      return 0;
    case 'help': {
      const topic = rest[0];
      if (topic === undefined) {
        ctx.stdout(USAGE);
        return 0;
      }
      if (!Object.hasOwn(COMMAND_USAGE, topic)) throw new UsageError(`no help for unknown command "${topic}"\n${USAGE}`);
      ctx.stdout(commandHelp(topic));
      return 0;
    }
    case undefined:
    case '--help':
    case '-h':
      ctx.stdout(USAGE);
      return command === undefined ? EX_USAGE : 0;
    default:
      throw new UsageError(`unknown command "${command}"\n${USAGE}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const code = exitCodeFor(err);
    const message = err instanceof Error ? (code === 1 ? (err.stack ?? err.message) : err.message) : String(err);
    process.stderr.write(`edge-classifier: ${message}\n`);
    process.exit(code);
  },
);
