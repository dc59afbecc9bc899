import type { DestinationStream } from 'pino';
import type { Logger } from '../ops/logger.js';
import type { Clock } from '../ops/clock.js';

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
