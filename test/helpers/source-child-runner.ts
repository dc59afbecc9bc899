import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findProcesses, type ProcInfo } from './processes.js';

const here = dirname(fileURLToPath(import.meta.url));
const viteNode = join(dirname(createRequire(import.meta.url).resolve('vite-node/package.json')), 'vite-node.mjs');

/** A process running one camera source (source-child.ts), and what it printed. */
export class SourceChild {
  readonly events: Record<string, unknown>[] = [];
  stderr = '';

  private constructor(readonly proc: ChildProcess) {}

  static start(config: object): SourceChild {
    // vite-node runs the TypeScript in this very process: its pid is the capture process's parent.
    const proc = spawn(process.execPath, [viteNode, join(here, 'source-child.ts'), JSON.stringify(config)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const child = new SourceChild(proc);
    let buf = '';
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (d: string) => {
      buf += d;
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const line of lines) {
        try {
          child.events.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // not one of ours (vite-node output)
        }
      }
    });
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d: string) => (child.stderr = (child.stderr + d).slice(-4000)));
    return child;
  }

  count(event: string): number {
    return this.events.filter((e) => e.event === event).length;
  }

  async until(cond: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = performance.now() + ms;
    while (!cond()) {
      if (performance.now() > deadline) {
        throw new Error(`${what} not seen within ${ms} ms; events=${JSON.stringify(this.events.slice(-5))} stderr=${this.stderr}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Its live children named `name` (setpriv exec()s the program, so argv[0] is the program). */
  children(name: string): ProcInfo[] {
    return findProcesses((argv) => (argv[0] ?? '').split('/').pop() === name).filter((p) => p.ppid === this.proc.pid);
  }

  async kill9(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGKILL');
    await exited;
  }
}
