import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForPort } from './ports.js';

export function hasProgram(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Debian installs mosquitto in /usr/sbin, which is not on every PATH. */
export function mosquittoBinary(): string | undefined {
  for (const p of ['/usr/sbin/mosquitto', '/usr/bin/mosquitto']) {
    try {
      execFileSync(p, ['-h'], { stdio: 'ignore' });
    } catch (err) {
      // `mosquitto -h` exits 3 after printing help; ENOENT means it is not there.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
    }
    return p;
  }
  return hasProgram('mosquitto') ? 'mosquitto' : undefined;
}

/** A real mosquitto broker on a free loopback port, started and stopped by the test. */
export class Mosquitto {
  private proc: ChildProcess | undefined;
  log = '';

  private constructor(
    readonly port: number,
    private readonly confPath: string,
  ) {}

  static async start(port?: number): Promise<Mosquitto> {
    const dir = mkdtempSync(join(tmpdir(), 'mosquitto-'));
    const p = port ?? (await freePort());
    const conf = join(dir, 'mosquitto.conf');
    writeFileSync(conf, `listener ${p} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
    const m = new Mosquitto(p, conf);
    await m.restart();
    return m;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /** (Re)starts the broker on the same port: used to simulate outages. */
  async restart(): Promise<void> {
    const bin = mosquittoBinary();
    if (!bin) throw new Error('mosquitto is not installed (apt-get install mosquitto)');
    const proc = spawn(bin, ['-c', this.confPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout?.on('data', (d: Buffer) => (this.log += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (this.log += d.toString()));
    this.proc = proc;
    await waitForPort(this.port);
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (!proc || proc.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
    });
  }
}
