import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/edge-classifier', import.meta.url));
export const REPO = fileURLToPath(new URL('../../', import.meta.url));

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI to completion. */
export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<Finished> {
  const proc = startCli(args, opts);
  return proc.finished;
}

export interface Started {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  finished: Promise<Finished>;
  /** JSON log lines printed so far (pino writes them to stdout for `run`). */
  logs: () => Record<string, unknown>[];
}

/** Starts the built CLI in the background (the daemon, typically). */
export function startCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; cgroup?: string } = {}): Started {
  // With `cgroup` (a cgroup directory): the process joins it before node starts, so every byte
  // it ever allocates is charged there (exec keeps the pid).
  const [cmd, argv] = opts.cgroup
    ? ['/bin/sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', opts.cgroup, process.execPath, BIN, ...args]]
    : [process.execPath, [BIN, ...args]];
  const proc = spawn(cmd, argv, {
    cwd: opts.cwd ?? REPO,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const finished = new Promise<Finished>((resolve) =>
    proc.on('close', (code, signal) => resolve({ code, signal, stdout: out, stderr: err })),
  );
  const logs = (): Record<string, unknown>[] =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { proc, stdout: () => out, stderr: () => err, finished, logs };
}

/** Polls the process's JSON log lines until one satisfies `pred`. */
export async function waitForLog(
  started: Started,
  pred: (line: Record<string, unknown>) => boolean,
  timeoutMs = 10_000,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hit = started.logs().find(pred);
    if (hit) return hit;
    if (Date.now() > deadline) throw new Error(`no matching log line within ${timeoutMs} ms; stderr: ${started.stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
