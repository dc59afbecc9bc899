/**
 * One run of a capture process, from spawn to 'close': stdout through a splitter into frames,
 * stderr into a redacted tail for messages, a stall watchdog, and the kill (SIGTERM to the
 * process group, SIGKILL after a grace). Resolves with how the run ended; never rejects, and
 * nothing thrown in a listener escapes (it would crash the daemon from an event handler).
 *
 * The child runs in its own process group (`detached`), so a kill also reaches anything it
 * forks; the group is only signalled while the child is unreaped, as afterwards its id may be
 * reused. The run only ends on 'close' (exit + stdio closed), so nothing of it is left then.
 */
import type { ChildProcess } from 'node:child_process';
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import type { FrameSink } from '../frame.js';
import type { FrameSplitter, SplitterDeps, StreamError } from './frame-splitter.js';
import type { SpawnFn } from './parent-death.js';
import { StderrTail } from './stderr-tail.js';

export interface RunTiming {
  /** No frame for this long: the process is killed ('stall'). */
  stallTimeoutMs: number;
  /** SIGTERM to SIGKILL. */
  killGraceMs: number;
}

export interface ProcessRunDeps {
  /** The program's name for messages, and the full argv (a setpriv prefix included). */
  command: string;
  argv: readonly string[];
  /** What is captured, without credentials (rtsp://host/path, /dev/video0). */
  description: string;
  redact: (text: string) => string;
  createSplitter: (deps: SplitterDeps) => FrameSplitter;
  maxFrameBytes: number;
  onFrame: (data: Buffer) => void;
  /** Exit code 0 means the input is over (a file played once): 'ended', not 'exit'. */
  endOnCleanExit: boolean;
  /** Only for errors that do not end the run (bytes skipped); the caller reports the rest. */
  sink: Pick<FrameSink, 'captureError'>;
  spawn: SpawnFn;
  clock: Clock;
  logger: Logger;
  timing: RunTiming;
  /** Aborting it stops the run ('stopped'). */
  signal: AbortSignal;
  /** The previous run failed: the first frame is logged as a recovery. */
  restarted: boolean;
  /** Told the child's pid once spawned, and undefined once it has closed. */
  onPid: (pid: number | undefined) => void;
}

export interface RunOutcome {
  reason: 'stall' | 'exit' | 'error' | 'ended' | 'stopped';
  /** What happened, with the last stderr lines; redacted. */
  message: string;
  /** Frames flowed for at least stallTimeoutMs: the caller's failure count starts over. */
  healthy: boolean;
}

export function runProcess(deps: ProcessRunDeps): Promise<RunOutcome> {
  const { command, argv, clock, logger, timing, description, redact, signal } = deps;
  return new Promise<RunOutcome>((resolve) => {
    const startedAt = clock.monotonic();
    let child: ChildProcess;
    try {
      child = deps.spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      resolve({ reason: 'error', message: `cannot start ${command}: ${redact((err as Error).message)} [${description}]`, healthy: false });
      return;
    }
    deps.onPid(child.pid);
    const run = new AbortController(); // ends with this process: watchdog and kill timers
    const stderr = new StderrTail(redact);
    let frames = 0;
    let firstFrameAt = 0;
    let lastFrameAt = startedAt;
    let healthy = false;
    let verdict: { reason: RunOutcome['reason']; message: string } | undefined;
    let settled = false;

    const killGroup = (sig: NodeJS.Signals): void => {
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        // ESRCH: it exited between the check and the kill.
      }
    };
    const kill = (reason: RunOutcome['reason'], message: string): void => {
      if (verdict) return;
      verdict = { reason, message };
      killGroup('SIGTERM');
      after(deps, timing.killGraceMs, run.signal, () => killGroup('SIGKILL'));
    };
    const onAbort = (): void => kill('stopped', 'stopped');
    signal.addEventListener('abort', onAbort, { once: true });
    const finish = (outcome: RunOutcome): void => {
      if (settled) return;
      settled = true;
      run.abort();
      signal.removeEventListener('abort', onAbort);
      deps.onPid(undefined);
      resolve(outcome);
    };
    // A throw inside a listener would be an uncaught exception: end the run instead.
    const guard =
      <A extends unknown[]>(fn: (...args: A) => void) =>
      (...args: A): void => {
        try {
          fn(...args);
        } catch (err) {
          logger.error({ err }, 'capture process handler failed');
          kill('error', `internal error handling ${command}: ${(err as Error).message} [${description}]`);
        }
      };

    const splitter = deps.createSplitter({
      maxFrameBytes: deps.maxFrameBytes,
      onFrame: (data) => {
        if (verdict) return;
        const now = clock.monotonic();
        lastFrameAt = now;
        frames += 1;
        if (frames === 1) {
          firstFrameAt = now;
          if (deps.restarted) logger.info({ source: description }, 'capture running again');
        } else if (!healthy && now - firstFrameAt >= timing.stallTimeoutMs) {
          healthy = true;
        }
        try {
          deps.onFrame(data);
        } catch (err) {
          logger.error({ err }, 'frame handler failed'); // the sink's problem, not the process's
        }
      },
      onError: (err: StreamError) => {
        if (err.fatal) kill('error', `${err.message} [${description}]`);
        else if (!verdict) {
          try {
            deps.sink.captureError(new Error(`${err.message} [${description}]`));
          } catch (sinkErr) {
            logger.error({ err: sinkErr }, 'frame sink failed');
          }
        }
      },
    });

    child.stdout!.on('data', guard((chunk: Buffer) => splitter.push(chunk)));
    child.stdout!.on(
      'end',
      guard(() => {
        if (!verdict) splitter.end();
      }),
    );
    child.stdout!.on('error', () => undefined); // 'close' follows
    child.stderr!.on('data', guard((chunk: Buffer) => stderr.add(chunk)));
    child.stderr!.on('error', () => undefined);
    child.on('error', (err: NodeJS.ErrnoException) => {
      // After a successful spawn (a failed kill), 'close' follows: wait for it.
      if (child.pid !== undefined) return;
      const why = err.code === 'ENOENT' ? `${command} is not installed or not on PATH` : `cannot start ${command}`;
      finish({ reason: 'error', message: `${why} (${redact(err.message)}) [${description}]`, healthy: false });
    });
    child.on('exit', () => {
      // 'close' waits for stdout/stderr to close; something the child forked could hold them.
      after(deps, timing.killGraceMs, run.signal, () => {
        child.stdout?.destroy();
        child.stderr?.destroy();
      });
    });
    child.on('close', (code, exitSignal) => {
      let tail = '';
      try {
        tail = stderr.text();
      } catch (err) {
        logger.error({ err }, 'cannot render the stderr of a capture process');
      }
      const detail = tail ? `: ${tail}` : '';
      if (verdict) {
        finish({ reason: verdict.reason, message: `${verdict.message}${detail}`, healthy });
      } else if (code === 0 && deps.endOnCleanExit) {
        finish({ reason: 'ended', message: `${command} reached the end of its input after ${frames} frames`, healthy });
      } else {
        const secs = ((clock.monotonic() - startedAt) / 1000).toFixed(1);
        const produced = frames === 0 ? 'before its first frame' : `after ${frames} frames`;
        const how = exitHow(command, code, exitSignal);
        finish({ reason: 'exit', message: `${command} ${how} ${secs} s after start, ${produced} [${description}]${detail}`, healthy });
      }
    });

    watch(deps, run.signal, () => lastFrameAt, () =>
      kill('stall', `no frame from ${command} for ${timing.stallTimeoutMs} ms (stall_timeout_ms); killed [${description}]`),
    ).catch((err: unknown) => logger.error({ err }, 'capture watchdog failed'));
  });
}

function exitHow(command: string, code: number | null, signal: NodeJS.Signals | null): string {
  if (signal) return `was killed by ${signal}`;
  if (code === 127) return `could not be run (exit code 127; is ${command} installed?)`;
  if (code === 0) return 'exited with code 0 (end of stream)';
  return `exited with code ${code}`;
}

/** Calls `onStall` once no frame came for stallTimeoutMs; wakes about once per timeout. */
async function watch(deps: ProcessRunDeps, signal: AbortSignal, lastFrameAt: () => number, onStall: () => void): Promise<void> {
  const { clock, timing } = deps;
  while (!signal.aborted) {
    const idle = clock.monotonic() - lastFrameAt();
    if (idle >= timing.stallTimeoutMs) {
      onStall();
      return;
    }
    await clock.sleep(timing.stallTimeoutMs - idle, signal);
  }
}

/** Runs `fn` after `ms` unless `signal` aborted meanwhile. */
function after(deps: ProcessRunDeps, ms: number, signal: AbortSignal, fn: () => void): void {
  deps.clock
    .sleep(ms, signal)
    .then(() => {
      if (!signal.aborted) fn();
    })
    .catch((err: unknown) => deps.logger.error({ err }, 'capture timer failed'));
}
