import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A real memory limit for the processes a test moves into it: a child of this process's
 * memory cgroup, v1 (memory.limit_in_bytes) or v2 (memory.max), as systemd's MemoryMax= makes
 * for the unit. The kernel's OOM killer then acts inside it exactly as on a device: it kills
 * the process with the highest oom_score in the group when the group is full.
 *
 * Needs root (the tests run as root here and in CI). `create` throws with the reason when no
 * writable memory cgroup is available, so a test cannot pass without the limit in place;
 * prlimit --as is no substitute (an address-space limit makes allocations fail cleanly, which
 * is a different failure than the OOM kill this is for).
 */
export class MemoryCgroup {
  private constructor(
    readonly path: string,
    private readonly version: 1 | 2,
    private readonly parent: string,
  ) {}

  static create(limitBytes: number, name = `ec-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`): MemoryCgroup {
    const lines = readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n');
    const problems: string[] = [];
    // v1: "4:memory:/some/path"
    const v1 = lines.map((l) => l.split(':')).find((f) => f[1]?.split(',').includes('memory'));
    if (v1 && existsSync('/sys/fs/cgroup/memory/memory.limit_in_bytes')) {
      const parent = join('/sys/fs/cgroup/memory', v1[2] ?? '/');
      const path = join(parent, name);
      try {
        mkdirSync(path);
        writeFileSync(join(path, 'memory.limit_in_bytes'), String(limitBytes));
        // No swap to escape to (memsw exists only with swap accounting).
        if (existsSync(join(path, 'memory.memsw.limit_in_bytes'))) writeFileSync(join(path, 'memory.memsw.limit_in_bytes'), String(limitBytes));
        return new MemoryCgroup(path, 1, parent);
      } catch (err) {
        problems.push(`cgroup v1 ${path}: ${(err as Error).message}`);
        try {
          rmdirSync(path);
        } catch {
          // not created
        }
      }
    }
    // v2: "0::/some/path" on a cgroup2 mount at /sys/fs/cgroup.
    const v2 = lines.find((l) => l.startsWith('0::'));
    if (v2 && existsSync('/sys/fs/cgroup/cgroup.controllers')) {
      const parent = join('/sys/fs/cgroup', v2.slice(3));
      const path = join(parent, name);
      try {
        if (!readFileSync(join(parent, 'cgroup.controllers'), 'utf8').split(/\s+/).includes('memory')) throw new Error('the memory controller is not available to this cgroup');
        if (!readFileSync(join(parent, 'cgroup.subtree_control'), 'utf8').split(/\s+/).includes('memory')) writeFileSync(join(parent, 'cgroup.subtree_control'), '+memory');
        mkdirSync(path);
        writeFileSync(join(path, 'memory.max'), String(limitBytes));
        if (existsSync(join(path, 'memory.swap.max'))) writeFileSync(join(path, 'memory.swap.max'), '0');
        return new MemoryCgroup(path, 2, parent);
      } catch (err) {
        problems.push(`cgroup v2 ${path}: ${(err as Error).message}`);
        try {
          rmdirSync(path);
        } catch {
          // not created
        }
      }
    }
    throw new Error(`no writable memory cgroup for a real memory limit (run as root with a cgroup v1 memory hierarchy or a v2 one with the memory controller delegated): ${problems.join('; ') || 'no memory cgroup found in /proc/self/cgroup'}`);
  }

  /** Moves a process in; its children (and their children) are born inside. */
  add(pid: number): void {
    writeFileSync(join(this.path, 'cgroup.procs'), String(pid));
  }

  pids(): number[] {
    return readFileSync(join(this.path, 'cgroup.procs'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map(Number);
  }

  /** Processes the kernel's OOM killer killed in this group so far. */
  oomKills(): number {
    const file = this.version === 1 ? 'memory.oom_control' : 'memory.events';
    const m = /^oom_kill (\d+)$/m.exec(readFileSync(join(this.path, file), 'utf8'));
    return m ? Number(m[1]) : 0;
  }

  /** Moves whatever is left back to the parent and removes the group. */
  remove(): void {
    for (const pid of this.pids()) {
      try {
        writeFileSync(join(this.parent, 'cgroup.procs'), String(pid));
      } catch {
        // gone meanwhile
      }
    }
    rmdirSync(this.path);
  }
}
