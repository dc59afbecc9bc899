import { pino, type Bindings, type ChildLoggerOptions, type Logger, type DestinationStream } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level: string;
  /** Where JSON lines go; stdout when absent. Tests pass a stream and read it back. */
  stream?: DestinationStream;
  /** pino's hook for every descendant logger (LogLevels tracks them to change levels at runtime). */
  onChild?: (child: Logger) => void;
}

/** The `module` of a logger made by child({ module }); descendants inherit it (prototype chain). */
const moduleOf = Symbol('edge-classifier.module');
type ModuleLogger = Logger & { [moduleOf]?: string };
type ChildFn = (this: Logger, bindings: Bindings, options?: ChildLoggerOptions) => Logger;

/**
 * pino JSON logs; modules and cameras take `logger.child({ module })` / `child({ camera })`.
 *
 * A line carries one `module`, the innermost: a part handed a logger of its owner's module
 * (the classifier's) makes its own (inference) for what it logs. pino appends every child's
 * bindings to its parent's, so that line would say `"module":"classifier","module":"inference"`.
 * Here `module` is kept off pino's bindings: the child remembers it, and a mixin writes it once.
 */
export function createLogger(opts: LoggerOptions): Logger {
  const options = {
    level: opts.level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    mixin: (_obj: object, _level: number, logger: ModuleLogger) => (logger[moduleOf] === undefined ? {} : { module: logger[moduleOf] }),
    ...(opts.onChild ? { onChild: opts.onChild } : {}),
  };
  const root = opts.stream ? pino(options, opts.stream) : pino(options);
  // Children are made with Object.create(parent), so every descendant inherits this child().
  const withChild = root as unknown as { child: ChildFn };
  const pinoChild = withChild.child;
  const child: ChildFn = function (this: Logger, bindings, childOptions) {
    if (bindings === null || typeof bindings !== 'object' || !('module' in bindings)) return pinoChild.call(this, bindings, childOptions);
    const { module, ...rest } = bindings;
    const made = pinoChild.call(this, rest, childOptions) as ModuleLogger;
    made[moduleOf] = String(module);
    return made;
  };
  withChild.child = child;
  return root;
}
