import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForPort } from './ports.js';

// Debian's nginx (`apt-get install nginx`) serving a directory on a free loopback port: a real
// static file server with Range, If-Range, ETag, Last-Modified and 304s, exactly what a release
// host or CDN does. Started in the foreground by the test, with every path inside a temp prefix
// (no /var/log/nginx, /run/nginx.pid or /var/lib/nginx), and stopped by it.

/** Debian installs nginx in /usr/sbin, which is not on every PATH. */
export function nginxBinary(): string | undefined {
  return ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));
}

export class Nginx {
  private log = '';

  private constructor(
    private readonly proc: ChildProcess,
    readonly port: number,
    readonly root: string,
    readonly prefix: string,
  ) {
    proc.stdout?.on('data', (d: Buffer) => (this.log += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (this.log += d.toString()));
  }

  /**
   * Serves `root` (a directory the test fills) until stop(). `opts.http` and `opts.server` are
   * extra directives for the http and server blocks (`keepalive_timeout 0;`, a `location`);
   * `opts.port` (default: a free one) starts it again where a stopped one served.
   */
  static async start(root: string, opts: { http?: string[]; server?: string[]; port?: number } = {}): Promise<Nginx> {
    const bin = nginxBinary();
    if (!bin) throw new Error('nginx is not installed (apt-get install nginx)');
    const prefix = mkdtempSync(join(tmpdir(), 'nginx-'));
    for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(prefix, d));
    const port = opts.port ?? (await freePort());
    // Started as root, the master would drop its workers to `nobody`, who cannot read a
    // mkdtemp (0700) directory: keep them root (a throwaway test server on loopback).
    const asRoot = process.getuid?.() === 0;
    const conf = [
      ...(asRoot ? ['user root;'] : []),
      'worker_processes 1;',
      `pid ${join(prefix, 'nginx.pid')};`,
      `error_log ${join(prefix, 'error.log')} info;`,
      'events { worker_connections 256; }',
      'http {',
      `  access_log ${join(prefix, 'access.log')};`,
      ...['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((d) => `  ${d === 'body' ? 'client_body' : d}_temp_path ${join(prefix, d)};`),
      '  types { application/json json; text/plain txt; }',
      '  default_type application/octet-stream;',
      '  sendfile on;',
      '  etag on;',
      ...(opts.http ?? []).map((d) => `  ${d}`),
      '  server {',
      `    listen 127.0.0.1:${port};`,
      `    root ${root};`,
      ...(opts.server ?? []).map((d) => `    ${d}`),
      '    location / { }',
      '  }',
      '}',
    ];
    const confPath = join(prefix, 'nginx.conf');
    writeFileSync(confPath, `${conf.join('\n')}\n`);
    // -e: the compiled-in error log (/var/log/nginx/error.log) is opened before the config is read.
    const proc = spawn(bin, ['-p', prefix, '-c', confPath, '-e', join(prefix, 'error.log'), '-g', 'daemon off;'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const n = new Nginx(proc, port, root, prefix);
    const exited = new Promise<never>((_, reject) =>
      proc.once('exit', (code) => reject(new Error(`nginx exited (${code}) while starting:\n${n.log}\n${n.errorLog()}`))),
    );
    exited.catch(() => undefined);
    try {
      await Promise.race([waitForPort(port), exited]);
    } catch (err) {
      await n.stop();
      throw err;
    }
    return n;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}/${path.replace(/^\//, '')}`;
  }

  /** Request lines served so far ("GET /stable/model.onnx HTTP/1.1" ...), one per line. */
  accessLog(): string {
    try {
      return readFileSync(join(this.prefix, 'access.log'), 'utf8');
    } catch {
      return '';
    }
  }

  errorLog(): string {
    try {
      return readFileSync(join(this.prefix, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** SIGTERM (fast shutdown: the master stops its worker), SIGKILL after 5 s; removes the prefix. */
  async stop(): Promise<void> {
    const proc = this.proc;
    if (proc.exitCode === null && proc.signalCode === null) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
        proc.once('exit', () => (clearTimeout(timer), resolve()));
        proc.kill('SIGTERM');
      });
    }
    rmSync(this.prefix, { recursive: true, force: true });
  }
}
