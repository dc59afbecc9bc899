import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.js';
import { inTest, keepForFile } from './leftovers.js';

const script = join(dirname(fileURLToPath(import.meta.url)), 'rtsp-server.py');
// Debian's python3-gi is installed for the system Python; a pyenv/venv python3 on PATH lacks it.
const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

export interface RtspServerOptions {
  port?: number;
  path?: string;
  username?: string;
  password?: string;
}

/**
 * A real RTSP server (GStreamer's gst-rtsp-server, rtsp-server.py) on 127.0.0.1, started and
 * stopped by the test; restart() brings it back on the same port.
 */
export class RtspServer {
  private proc: ChildProcess | undefined;
  output = '';
  /** Started in beforeAll: a restart inside a test is still the file's server, not left over by that test. */
  private readonly forFile = !inTest();

  private constructor(
    readonly port: number,
    readonly path: string,
    private readonly credentials: string[],
  ) {}

  static async start(opts: RtspServerOptions = {}): Promise<RtspServer> {
    const credentials = opts.username ? [opts.username, opts.password ?? ''] : [];
    const server = new RtspServer(opts.port ?? (await freePort()), opts.path ?? '/cam', credentials);
    await server.restart();
    return server;
  }

  /** The URL without credentials. */
  get url(): string {
    return `rtsp://127.0.0.1:${this.port}${this.path}`;
  }

  async restart(): Promise<void> {
    await this.stop();
    const proc = spawn(python, [script, String(this.port), this.path, ...this.credentials], { stdio: ['ignore', 'pipe', 'pipe'] });
    if (this.forFile) keepForFile(proc);
    this.proc = proc;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`RTSP server not ready after 15 s: ${this.output}`)), 15_000);
      const onData = (d: Buffer): void => {
        this.output = (this.output + d.toString()).slice(-4000);
        if (this.output.includes('ready')) {
          clearTimeout(timer);
          resolve();
        }
      };
      proc.stdout.on('data', onData);
      proc.stderr.on('data', onData);
      proc.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`cannot run ${python} for the RTSP server: ${err.message}`));
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        const hint = /not available|No module named 'gi'/.test(this.output)
          ? ' (Debian: apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good)'
          : '';
        reject(new Error(`RTSP server exited with code ${code}${hint}: ${this.output}`));
      });
    });
    this.output = '';
  }

  /** SIGTERM, SIGKILL after 3 s; resolves once the server process is gone. */
  async stop(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => proc.kill('SIGKILL'), 3_000);
      proc.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      proc.kill('SIGTERM');
    });
  }
}
