import { readdirSync, readFileSync } from 'node:fs';

export interface ProcInfo {
  pid: number;
  ppid: number;
  pgid: number;
  /** Start time in clock ticks since boot: with the pid, names a process even after pid reuse. */
  start: number;
  argv: string[];
}

/** A live (not zombie) process, read from /proc; undefined once it is gone. */
export function procInfo(pid: number): ProcInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a.length > 0);
    return { pid, ppid: Number(fields[1]), pgid: Number(fields[2]), start: Number(fields[19]), argv };
  } catch {
    return undefined;
  }
}

/** The environment a process was started with (/proc/PID/environ); undefined once it is gone. */
export function environOf(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  } catch {
    return undefined;
  }
}

/** Live processes whose argv matches; synchronous, so it can run inside a sink callback. */
export function findProcesses(match: (argv: string[]) => boolean): ProcInfo[] {
  const found: ProcInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const info = procInfo(Number(entry));
    if (info && match(info.argv)) found.push(info);
  }
  return found;
}

/** Processes in a process group (a detached child's group is its own pid). */
export function groupMembers(pgid: number): ProcInfo[] {
  return findProcesses(() => true).filter((p) => p.pgid === pgid);
}

/** Resolves with how long it took for `pid` to be gone; throws after `ms`. */
export async function waitGone(pid: number, ms: number): Promise<number> {
  const t0 = performance.now();
  while (procInfo(pid)) {
    if (performance.now() - t0 > ms) throw new Error(`process ${pid} still alive after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return performance.now() - t0;
}
