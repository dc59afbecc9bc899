import type { ChildProcess } from 'node:child_process';
import { threadId } from 'node:worker_threads';
import { environOf, findProcesses, procInfo, type ProcInfo } from './processes.js';

// Processes a test starts die with it, whether it passes, fails or times out (vitest's timeout
// abandons the test's promise: its `finally` runs whenever the await it was stuck on returns,
// if ever). Every process a test file starts, directly or not (the daemon, its ffmpeg and
// fswebcam, mosquitto, nginx, Chromium, an in-process camera source's ffmpeg), inherits two
// environment variables: the run's id (set by test/setup/global-leftovers.ts) and its owner,
// this worker (set by test/setup/kill-leftovers.ts). /proc/PID/environ keeps them even after
// the process is orphaned, its parent SIGKILLed or its process group changed, so the setup file can:
// - after each test: SIGKILL what the test started and left running (born during the test, not
//   a descendant of something older, not kept for the file with keepForFile());
// - after each file: SIGKILL everything the file started and left running;
// and the global setup, at the end of the run: everything the run started.
// Each kill is reported (console.warn) with the process's command line.
// A child spawned with an `env` that leaves out process.env escapes this: spread process.env in.
// Tests of a file run one at a time here; concurrent tests (it.concurrent) would need the
// per-test kill told which test started what.

export const RUN_ENV = 'EDGE_CLASSIFIER_TEST_RUN';
export const OWNER_ENV = 'EDGE_CLASSIFIER_TEST_OWNER';

/** This worker's owner tag: `<run>/<pid>/<thread>`. */
export function ownerTag(): string {
  const run = process.env[RUN_ENV] ?? `adhoc-${process.pid}`;
  return `${run}/${process.pid}/${threadId}`;
}

/** Tags the processes this worker starts from now on (the setup file calls it). */
export function tagChildren(): void {
  process.env[OWNER_ENV] = ownerTag();
}

export const procKey = (p: Pick<ProcInfo, 'pid' | 'start'>): string => `${p.pid}@${p.start}`;

function ownerOf(pid: number): string | undefined {
  const entry = environOf(pid)?.find((e) => e.startsWith(`${OWNER_ENV}=`));
  return entry?.slice(OWNER_ENV.length + 1);
}

/**
 * Live processes this worker started (tagged with its owner tag, or, tagged or not, its
 * descendants), or with `run`, every process tagged by that run's workers; never this process.
 */
export function ownedProcesses(run?: string): ProcInfo[] {
  const all = findProcesses(() => true);
  if (run !== undefined) return all.filter((p) => p.pid !== process.pid && ownerOf(p.pid)?.startsWith(`${run}/`));
  const tag = ownerTag();
  const byPid = new Map(all.map((p) => [p.pid, p]));
  const isDescendant = (p: ProcInfo): boolean => {
    for (let q: ProcInfo | undefined = p, hops = 0; q && hops < 64; q = byPid.get(q.ppid), hops++) {
      if (q.ppid === process.pid) return true;
    }
    return false;
  };
  // esbuild's service process (esbuild's build() in a test file) is the worker's own, like a thread.
  const esbuildService = (p: ProcInfo): boolean =>
    p.ppid === process.pid && (p.argv[0] ?? '').endsWith('esbuild') && p.argv.some((a) => a.startsWith('--service='));
  return all.filter((p) => p.pid !== process.pid && (ownerOf(p.pid) === tag || isDescendant(p)) && !esbuildService(p));
}

// Processes (and their descendants) that outlive the test that started them: a broker
// restarted inside a test is the file's broker.
const keptForFile = new Set<string>();
let testRunning = false;

/** Whether a test (or its beforeEach/afterEach) is running: what a helper starts now is the test's. */
export function inTest(): boolean {
  return testRunning;
}

/**
 * Exempts `child` and its descendants from the per-test kill: it is the file's (killed after
 * the file if still running). For servers a file starts in beforeAll and restarts in its tests.
 */
export function keepForFile(child: ChildProcess): void {
  const info = child.pid === undefined ? undefined : procInfo(child.pid);
  if (info) keptForFile.add(procKey(info));
}

/** SIGKILLs `procs` (parents first, so none respawns a child), then waits until they are gone. */
export async function killAll(procs: ProcInfo[], ms = 5_000): Promise<ProcInfo[]> {
  const alive = (p: ProcInfo): boolean => {
    const now = procInfo(p.pid);
    return now !== undefined && now.start === p.start;
  };
  const depth = (p: ProcInfo): number => {
    let d = 0;
    for (let q = procInfo(p.ppid); q && d < 64; q = procInfo(q.ppid)) d++;
    return d;
  };
  const killed: ProcInfo[] = [];
  for (const p of [...procs].sort((a, b) => depth(a) - depth(b))) {
    if (!alive(p)) continue;
    try {
      process.kill(p.pid, 'SIGKILL');
      killed.push(p);
    } catch {
      // gone meanwhile
    }
  }
  const deadline = performance.now() + ms;
  while (killed.some(alive) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  return killed;
}

/** Waits up to `graceMs` for `procs` to exit by themselves (a SIGTERM sent just before), then kills the rest. */
export async function reap(procs: ProcInfo[], graceMs: number): Promise<ProcInfo[]> {
  const stillAlive = (): ProcInfo[] => procs.filter((p) => procInfo(p.pid)?.start === p.start);
  const deadline = performance.now() + graceMs;
  while (stillAlive().length > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return killAll(stillAlive());
}

export const describeProcs = (procs: ProcInfo[]): string =>
  procs.map((p) => `\n  pid ${p.pid}: ${p.argv.join(' ').slice(0, 200)}`).join('');

// --- used by test/setup/kill-leftovers.ts

let atTestStart = new Set<string>();

export function testStarted(): void {
  atTestStart = new Set(ownedProcesses().map(procKey));
  testRunning = true;
}

/** What the test that just ended left running: born during it, not kept for the file, not a child of an older process. */
export function testLeftovers(): ProcInfo[] {
  testRunning = false;
  const owned = ownedProcesses();
  const byPid = new Map(owned.map((p) => [p.pid, p]));
  const exempt = (p: ProcInfo): boolean => {
    for (let q: ProcInfo | undefined = p, hops = 0; q && hops < 64; q = byPid.get(q.ppid), hops++) {
      if (keptForFile.has(procKey(q)) || atTestStart.has(procKey(q))) return true;
    }
    return false;
  };
  return owned.filter((p) => !exempt(p));
}

export function fileLeftovers(): ProcInfo[] {
  keptForFile.clear();
  return ownedProcesses();
}
