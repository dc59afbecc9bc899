import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A real, small file system: a tmpfs of `size` mounted at `dir` (root only: the tests run as
 * root here and in CI). Throws with mount's own message when it cannot be mounted, so a test
 * that needs a full disk fails instead of passing on a disk that never fills.
 */
export class Tmpfs {
  private constructor(readonly dir: string) {}

  static mount(dir: string, size: string): Tmpfs {
    mkdirSync(dir, { recursive: true });
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      const e = err as { stderr?: Buffer; message: string };
      throw new Error(`cannot mount a ${size} tmpfs at ${dir} (the test needs root): ${e.stderr?.toString().trim() || e.message}`);
    }
    return new Tmpfs(dir);
  }

  /** Writes `name` until the file system says ENOSPC (big chunks, then down to single bytes); returns the bytes written. */
  fill(name = 'filler'): number {
    const fd = openSync(join(this.dir, name), 'w');
    let total = 0;
    try {
      for (const size of [1 << 20, 1 << 16, 1 << 12, 1]) {
        const chunk = Buffer.alloc(size, 0x5a);
        for (;;) {
          try {
            total += writeSync(fd, chunk);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
            throw err;
          }
        }
      }
    } finally {
      closeSync(fd);
    }
    return total;
  }

  unfill(name = 'filler'): void {
    rmSync(join(this.dir, name), { force: true });
  }

  /** Unmounts (lazily if something still holds it). */
  unmount(): void {
    try {
      execFileSync('umount', [this.dir], { stdio: 'ignore' });
    } catch {
      execFileSync('umount', ['-l', this.dir], { stdio: 'ignore' });
    }
  }
}
