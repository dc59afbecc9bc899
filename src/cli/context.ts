import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { DestinationStream } from 'pino';
import type { Logger } from '../core/logger.js';
import type { Clock } from '../core/clock.js';

/** What every CLI command gets from the entry point. */
export interface CliContext {
  logger: Logger;
  clock: Clock;
  workerUrl: URL;
  env: NodeJS.ProcessEnv;
  stdout: (line: string) => void;
  stderr: (line: string) => void;
  version: string;
  /** Where the daemon's JSON logs go; stdout when absent. */
  logStream?: DestinationStream;
}

/** Bad command-line usage: the entry point prints the message and exits 64 (EX_USAGE). */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * node:util parseArgs, with unknown or malformed options as usage errors (exit 64) that show the
 * command's usage, instead of a TypeError stack trace and exit 1.
 */
export function parseCliArgs<T extends ParseArgsConfig>(config: T, usage: string): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nusage: edge-classifier ${usage}`);
  }
}
