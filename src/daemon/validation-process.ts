/**
 * Validates a candidate model in a child process (validation-child.ts) instead of a worker
 * thread of the daemon. A worker thread shares the daemon's memory and fate: a candidate that
 * needs more memory than the unit's MemoryMax= got the whole daemon OOM-killed, and one that
 * crashes onnxruntime aborts it. In a child process with oom_score_adj 1000, the kernel's OOM
 * killer picks the child; a crash or a hang costs the child only, and the daemon refuses the
 * release with the reason:
 *
 * - the child dies by a signal (the OOM killer's SIGKILL, SIGSEGV, SIGABRT) or exits non-zero
 *   before its report: a failed report ("the validation process was killed by SIGKILL: out of
 *   memory ..."), so the updater refuses the release for good;
 * - no report within the request's timeout plus a grace: the child is killed, same;
 * - the daemon stops (`signal`): the child is killed and the promise rejects (no verdict, no
 *   refusal: the release is validated again after the restart);
 * - the child cannot start or load the validator (before its `ready`): rejects too, since that
 *   is the daemon's problem, not the candidate's.
 *
 * When the daemon itself dies (its own OOM kill, power loss) the child follows it (IPC
 * disconnect), and the store's validation marker refuses the release at the next start.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../core/logger.js';
import type { ValidationReport, ValidationRequest } from '../updates/validator.js';

/** Parent -> child. */
export interface ChildRequest {
  type: 'validate';
  request: ValidationRequest;
  workerUrl: string;
  logLevel: string;
}

/** Child -> parent. */
export type ChildMessage = { type: 'ready' } | { type: 'report'; report: ValidationReport } | { type: 'failed'; error: string };

export interface ValidationProcessDeps {
  logger: Logger;
  /** The compiled child entry (dist/daemon/validation-child.js). */
  childUrl: URL;
  /** The compiled inference worker the validator starts inside the child. */
  workerUrl: URL;
  /** The child's log level (its JSON lines go to the daemon's stdout). */
  logLevel: string;
  /** Added to the request's timeout before the child is killed; default 30 s. */
  graceMs?: number;
  env?: NodeJS.ProcessEnv;
}

export class ValidationAborted extends Error {
  override name = 'ValidationAborted';
}

const DEFAULT_TIMEOUT_MS = 600_000;
const STDERR_TAIL = 600;

/** The compiled child entry next to this module. */
export function defaultValidationChildUrl(): URL {
  return new URL('./validation-child.js', import.meta.url);
}

/**
 * A report that fails with one reason: nothing was measured, so only the verdict and the reason
 * mean anything (what the updater reads). The validator's own measurement fields stay unset.
 */
export function failedReport(req: Pick<ValidationRequest, 'currentMedianMs'>, reason: string): ValidationReport {
  const report: Pick<ValidationReport, 'ok' | 'provider' | 'fallbacks' | 'inputOk' | 'warmupMs' | 'agreement' | 'sets' | 'medianMs' | 'currentMedianMs' | 'reasons'> = {
    ok: false,
    provider: undefined,
    fallbacks: [],
    inputOk: false,
    warmupMs: undefined,
    agreement: { matched: 0, total: 0 },
    sets: [],
    medianMs: undefined,
    currentMedianMs: req.currentMedianMs,
    reasons: [reason],
  };
  return report as ValidationReport;
}

/**
 * OOM kills so far in this process's memory cgroup (v2 memory.events, v1 memory.oom_control),
 * which the child shares; undefined when not readable (no cgroup, an old kernel).
 */
export function memoryCgroupOomKills(): number | undefined {
  try {
    const lines = readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n');
    const v1 = lines.map((l) => l.split(':')).find((f) => f[1]?.split(',').includes('memory'));
    const file = v1 ? join('/sys/fs/cgroup/memory', v1[2] ?? '/', 'memory.oom_control') : join('/sys/fs/cgroup', (lines.find((l) => l.startsWith('0::')) ?? '0::/').slice(3), 'memory.events');
    const m = /^oom_kill (\d+)$/m.exec(readFileSync(file, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

const seconds = (ms: number): string => (ms >= 10_000 ? `${Math.round(ms / 1000)} s` : `${ms} ms`);

export function validateInChildProcess(deps: ValidationProcessDeps, req: ValidationRequest, signal?: AbortSignal): Promise<ValidationReport> {
  const { logger } = deps;
  if (signal?.aborted) return Promise.reject(new ValidationAborted('validation not started: the daemon is stopping'));
  const limitMs = (req.timeoutMs ?? DEFAULT_TIMEOUT_MS) + (deps.graceMs ?? 30_000);
  const oomBefore = memoryCgroupOomKills();
  const env = { ...(deps.env ?? process.env) };
  // The child is not the service: systemd's notify socket and watchdog are the daemon's.
  for (const k of ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID', 'LISTEN_FDS', 'LISTEN_PID']) delete env[k];
  const started = performance.now();
  let child: ChildProcess;
  try {
    child = fork(fileURLToPath(deps.childUrl), [], { execArgv: [], env, stdio: ['ignore', 'inherit', 'pipe', 'ipc'], serialization: 'json' });
  } catch (err) {
    return Promise.reject(new Error(`cannot start the validation process: ${(err as Error).message}`));
  }
  const pid = child.pid;
  logger.info({ pid, model: req.modelPath, timeoutMs: limitMs }, 'validation process started');

  return new Promise<ValidationReport>((resolve, reject) => {
    let stderr = '';
    let ready = false;
    let settled = false;
    let why: 'timeout' | 'aborted' | undefined;
    child.stderr?.on('data', (d: Buffer) => {
      process.stderr.write(d);
      stderr = (stderr + d.toString()).slice(-STDERR_TAIL);
    });
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const kill = (): void => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    const timer = setTimeout(() => {
      why = 'timeout';
      logger.error({ pid, limitMs }, 'validation process did not finish in time; killing it');
      kill();
    }, limitMs);
    const onAbort = (): void => {
      why = 'aborted';
      kill();
    };
    signal?.addEventListener('abort', onAbort, { once: true });

    child.on('message', (raw: unknown) => {
      const msg = raw as ChildMessage;
      if (msg.type === 'ready') {
        ready = true;
        const request: ChildRequest = { type: 'validate', request: req, workerUrl: deps.workerUrl.href, logLevel: deps.logLevel };
        child.send(request);
      } else if (msg.type === 'report') {
        settle(() => resolve(msg.report));
        // It exits by itself once the report is out; one that does not is not waited for.
        setTimeout(kill, 5_000).unref();
      } else if (msg.type === 'failed') {
        settle(() => resolve(failedReport(req, `validation failed in the validation process: ${msg.error}`)));
      }
    });
    child.on('error', (err) => {
      // Spawning failed (or the IPC channel broke): the exit handler reports a process that ran.
      if (pid === undefined) settle(() => reject(new Error(`cannot start the validation process: ${err.message}`)));
    });
    child.on('exit', (code, sig) => {
      const ms = Math.round(performance.now() - started);
      logger.info({ pid, code, signal: sig, ms }, 'validation process exited');
      if (settled) return;
      if (why === 'aborted') return settle(() => reject(new ValidationAborted('validation stopped: the daemon is stopping')));
      if (why === 'timeout') return settle(() => resolve(failedReport(req, `validation did not finish within ${seconds(limitMs)} (the validation process was killed)`)));
      const last = stderr.trim().split('\n').at(-1)?.trim();
      const tail = last ? `; its last words: ${last}` : '';
      if (!ready) return settle(() => reject(new Error(`the validation process ${sig ? `was killed by ${sig}` : `exited with code ${code}`} before it was ready${tail}`)));
      let reason: string;
      if (sig) {
        const after = memoryCgroupOomKills();
        const oom = oomBefore !== undefined && after !== undefined && after > oomBefore;
        reason = `the validation process was killed by ${sig}${oom ? ': out of memory (the kernel OOM killer, at the memory limit of the service)' : sig === 'SIGKILL' ? ' (out of memory?)' : ''} after ${seconds(ms)}`;
      } else {
        reason = `the validation process exited with code ${code} without a report`;
      }
      logger.error({ pid, code, signal: sig, reason }, 'candidate model killed its validation process');
      settle(() => resolve(failedReport(req, `${reason}${tail}`)));
    });
  });
}
