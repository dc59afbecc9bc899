import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level: string;
  /** Where JSON lines go; stdout when absent. Tests pass a stream and read it back. */
  stream?: DestinationStream;
  /** pino's hook for every descendant logger (LogLevels tracks them to change levels at runtime). */
  onChild?: (child: Logger) => void;
}

/** pino JSON logs; modules and cameras take `logger.child({ module })` / `child({ camera })`. */
export function createLogger(opts: LoggerOptions): Logger {
  const options = { level: opts.level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime, ...(opts.onChild ? { onChild: opts.onChild } : {}) };
  return opts.stream ? pino(options, opts.stream) : pino(options);
}
