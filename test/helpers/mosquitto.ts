import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForPort } from './ports.js';
import { inTest, keepForFile } from './leftovers.js';

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

/** mosquitto's dynamic security plugin, where Debian (and most builds) put it. */
export function dynamicSecurityPlugin(): string | undefined {
  const dirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib', '/usr/local/lib'];
  return dirs.map((d) => join(d, 'mosquitto_dynamic_security.so')).find((p) => existsSync(p));
}

/** A TLS listener: PEM file paths, as in mosquitto.conf. */
export interface MosquittoTls {
  cafile: string;
  certfile: string;
  keyfile: string;
  /** Clients must present a certificate signed by `cafile` (default true). */
  requireCertificate?: boolean;
  /** The client certificate's CN becomes the username (ACLs then apply to it). Default false. */
  useIdentityAsUsername?: boolean;
}

export interface MosquittoOptions {
  /** Default: a free loopback port. */
  port?: number;
  /** Makes the (only) listener a TLS one; `url` is then mqtts://. */
  tls?: MosquittoTls;
  /** username -> password, written with `mosquitto_passwd -U`; anonymous clients are then refused. */
  passwords?: Record<string, string>;
  /** The text of an ACL file (`user x` / `topic readwrite a/#` lines). */
  acl?: string;
  /** Default: true unless `passwords` or `tls.useIdentityAsUsername` is given. */
  allowAnonymous?: boolean;
  /**
   * The dynamic security plugin's JSON (roles, groups, `anonymousGroup`, `defaultACLAccess`).
   * Unlike `acl`, whose file mosquitto 2.0 never checks on SUBSCRIBE, its roles can refuse a
   * subscription (SUBACK 0x87 in MQTT 5, 0x80 in 3.1.1).
   */
  dynamicSecurity?: object;
  /** mosquitto `log_type`s; e.g. ['all'] to see denied publishes/subscribes in `log`. */
  logTypes?: string[];
}

/** A real mosquitto broker on a free loopback port, started and stopped by the test. */
export class Mosquitto {
  private proc: ChildProcess | undefined;
  log = '';
  /** Started in beforeAll: a restart inside a test is still the file's broker, not left over by that test. */
  private readonly forFile = !inTest();

  private constructor(
    readonly port: number,
    private readonly confPath: string,
    readonly tls: boolean = false,
  ) {}

  static async start(portOrOptions?: number | MosquittoOptions): Promise<Mosquitto> {
    const opts: MosquittoOptions = typeof portOrOptions === 'number' ? { port: portOrOptions } : (portOrOptions ?? {});
    const dir = mkdtempSync(join(tmpdir(), 'mosquitto-'));
    // Started as root, mosquitto drops to the `mosquitto` user before it reads the TLS,
    // password and ACL files: let it into the directory (the files are test-only throwaways).
    chmodSync(dir, 0o755);
    const p = opts.port ?? (await freePort());
    const conf = join(dir, 'mosquitto.conf');
    const lines = [`listener ${p} 127.0.0.1`, 'persistence false'];
    const anonymous = opts.allowAnonymous ?? !(opts.passwords || opts.tls?.useIdentityAsUsername);
    lines.push(`allow_anonymous ${anonymous}`);
    if (opts.tls) {
      const t = opts.tls;
      // Copies the broker can read after dropping privileges, wherever the originals live.
      const copy = (src: string, name: string): string => {
        const dst = join(dir, name);
        copyFileSync(src, dst);
        chmodSync(dst, 0o644);
        return dst;
      };
      lines.push(`cafile ${copy(t.cafile, 'ca.crt')}`, `certfile ${copy(t.certfile, 'server.crt')}`, `keyfile ${copy(t.keyfile, 'server.key')}`);
      lines.push(`require_certificate ${t.requireCertificate ?? true}`);
      if (t.useIdentityAsUsername) lines.push('use_identity_as_username true');
    }
    if (opts.passwords) {
      const file = join(dir, 'passwd');
      const plain = Object.entries(opts.passwords).map(([u, pw]) => {
        if (/[:\n]/.test(u) || pw.includes('\n')) throw new Error(`unusable test credentials for ${u}`);
        return `${u}:${pw}\n`;
      });
      writeFileSync(file, plain.join(''), { mode: 0o644 });
      // -U hashes every plain-text password in place.
      execFileSync('mosquitto_passwd', ['-U', file], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
      chmodSync(file, 0o644);
      lines.push(`password_file ${file}`);
    }
    if (opts.acl !== undefined) {
      const file = join(dir, 'acl');
      writeFileSync(file, opts.acl.endsWith('\n') ? opts.acl : `${opts.acl}\n`, { mode: 0o644 });
      lines.push(`acl_file ${file}`);
    }
    if (opts.dynamicSecurity !== undefined) {
      const plugin = dynamicSecurityPlugin();
      if (!plugin) throw new Error('mosquitto_dynamic_security.so is not installed (it comes with Debian\'s mosquitto)');
      const file = join(dir, 'dynamic-security.json');
      writeFileSync(file, JSON.stringify(opts.dynamicSecurity), { mode: 0o644 });
      lines.push(`plugin ${plugin}`, `plugin_opt_config_file ${file}`);
    }
    for (const t of opts.logTypes ?? []) lines.push(`log_type ${t}`);
    writeFileSync(conf, `${lines.join('\n')}\n`);
    const m = new Mosquitto(p, conf, opts.tls !== undefined);
    await m.restart();
    return m;
  }

  get url(): string {
    return `${this.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${this.port}`;
  }

  /** (Re)starts the broker on the same port: used to simulate outages. */
  async restart(): Promise<void> {
    const bin = mosquittoBinary();
    if (!bin) throw new Error('mosquitto is not installed (apt-get install mosquitto)');
    const proc = spawn(bin, ['-c', this.confPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    if (this.forFile) keepForFile(proc);
    proc.stdout?.on('data', (d: Buffer) => (this.log += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (this.log += d.toString()));
    this.proc = proc;
    const exited = new Promise<never>((_, reject) =>
      proc.once('exit', (code) => reject(new Error(`mosquitto exited (${code}) while starting:\n${this.log}`))),
    );
    exited.catch(() => undefined);
    await Promise.race([waitForPort(this.port), exited]);
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
    });
  }
}
