import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, REPO, type Finished, type Started } from '../helpers/cli.js';

// The daemon's arm64 build (Raspberry Pi 4: Cortex-A72) on an x86_64 host, under qemu user-mode
// emulation. test/arm64/prepare.sh builds the tree this runs from (.tmp/arm64/).
//
// onnxruntime's cpuinfo library reads /proc/cpuinfo to detect the ARM cores and crashes (SIGSEGV)
// on the host's x86 one, so every arm64 process runs in a private mount namespace where a real
// Pi 4's /proc/cpuinfo (test/arm64/pi4-cpuinfo.txt) is bind-mounted over it:
//   unshare -m --propagation private sh -c 'mount --bind pi4-cpuinfo.txt /proc/cpuinfo && exec qemu-aarch64-static -cpu cortex-a72 -L /usr/aarch64-linux-gnu node ...'
// That needs root (CAP_SYS_ADMIN). The daemon also starts arm64 node child processes (the update
// validation process, from its own process.execPath): the kernel runs those through qemu by
// binfmt_misc (registered by prepare.sh), inside the same mount namespace, with the Cortex-A72
// and the sysroot taken from QEMU_CPU / QEMU_LD_PREFIX in the environment. Under emulation every timing is meaningless (10-100x slower
// than a real Pi, and on the host's cores): the tests check behaviour, never speed.

export const ARM64_DIR = join(REPO, '.tmp', 'arm64');
export const ARM64_NODE = join(ARM64_DIR, 'node', 'bin', 'node');
export const ARM64_APP = join(ARM64_DIR, 'app');
export const ARM64_BIN = join(ARM64_APP, 'bin', 'edge-classifier');
export const ARM64_RESULTS = join(ARM64_DIR, 'results');
export const PI4_CPUINFO = join(REPO, 'test', 'arm64', 'pi4-cpuinfo.txt');
export const QEMU = '/usr/bin/qemu-aarch64-static';
export const QEMU_CPU = 'cortex-a72';
export const SYSROOT = '/usr/aarch64-linux-gnu';
const BINFMT_ENTRY = '/proc/sys/fs/binfmt_misc/qemu-aarch64';
/** For the arm64 processes' own arm64 children, which qemu starts through binfmt_misc. */
export const QEMU_ENV = { QEMU_CPU, QEMU_LD_PREFIX: SYSROOT } as const;
const ORT_BINDING = join(ARM64_APP, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'arm64', 'onnxruntime_binding.node');

/** `$0` is the cpuinfo file, `$@` the emulated command. */
const LAUNCH = 'mount --bind "$0" /proc/cpuinfo && exec "$@"';

/** The command line (argv) that runs the arm64 node with `nodeArgs`, emulated as a Pi 4. */
export function arm64NodeCommand(nodeArgs: string[]): string[] {
  return ['unshare', '-m', '--propagation', 'private', 'sh', '-c', LAUNCH, PI4_CPUINFO, QEMU, '-cpu', QEMU_CPU, '-L', SYSROOT, ARM64_NODE, ...nodeArgs];
}

/** The command line that runs the arm64 app's CLI (`edge-classifier ARGS...`), emulated as a Pi 4. */
export function arm64Command(args: string[]): string[] {
  return arm64NodeCommand([ARM64_BIN, ...args]);
}

export const QEMU_X86 = '/usr/bin/qemu-x86_64-static';
/**
 * An x64 CPU with AVX2 but no AVX-512/VNNI (Haswell; without the features qemu's TCG lacks, which
 * it would warn about). onnxruntime's int8 kernels round differently there than with VNNI or on
 * arm64 NEON, as on many publishers' workstations; this host has VNNI, whose int8 answers match arm64's.
 */
export const AVX2_CPU = 'Haswell-noTSX,-pcid,-x2apic,-tsc-deadline,-invpcid';

/** The command line that runs the host's (x64) CLI on an emulated AVX2-only CPU (no namespace needed: onnxruntime reads x86 features with cpuid). */
export function avx2Command(args: string[]): string[] {
  return [QEMU_X86, '-cpu', AVX2_CPU, process.execPath, BIN, ...args];
}

export interface Arm64Process extends Started {
  /** SIGTERM to the process, SIGKILL to its whole group after `graceMs`; resolves when it exited. */
  stop(graceMs?: number): Promise<Finished>;
  /** SIGKILL to the whole process group, now. */
  kill(): void;
}

const live = new Set<Arm64Process>();

function killGroup(proc: ChildProcess, signal: NodeJS.Signals): void {
  if (proc.pid === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
  try {
    process.kill(-proc.pid, signal);
  } catch {
    // Already gone.
  }
}

// Belt and braces: a test worker that exits with emulated processes still running takes them along.
process.once('exit', () => {
  for (const p of live) p.kill();
});

/** Starts a command line (from arm64Command / arm64NodeCommand) in its own process group. */
export function startArm64(argv: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Arm64Process {
  const proc = spawn(argv[0]!, argv.slice(1), {
    cwd: opts.cwd ?? ARM64_APP,
    env: { ...process.env, ...QEMU_ENV, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, so cleanup reaches anything it starts
  });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const finished = new Promise<Finished>((resolve) =>
    proc.on('close', (code, signal) => {
      live.delete(handle);
      resolve({ code, signal, stdout: out, stderr: err });
    }),
  );
  const logs = (): Record<string, unknown>[] =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return []; // a line still being written
        }
      });
  const handle: Arm64Process = {
    proc,
    stdout: () => out,
    stderr: () => err,
    finished,
    logs,
    kill: () => killGroup(proc, 'SIGKILL'),
    stop: async (graceMs = 60_000) => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const timer = setTimeout(() => killGroup(proc, 'SIGKILL'), graceMs);
      const f = await finished;
      clearTimeout(timer);
      killGroup(proc, 'SIGKILL'); // anything the process left behind in its group
      return f;
    },
  };
  live.add(handle);
  proc.once('error', () => live.delete(handle));
  return handle;
}

export interface Timed extends Finished {
  wallMs: number;
}

/** Runs a command line to completion; SIGKILLs its process group and throws after `timeoutMs`. */
export async function runArm64(argv: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Timed> {
  const timeoutMs = opts.timeoutMs ?? 300_000;
  const t0 = performance.now();
  const p = startArm64(argv, opts);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    p.kill();
  }, timeoutMs);
  const f = await p.finished;
  clearTimeout(timer);
  if (timedOut) throw new Error(`arm64 command timed out after ${timeoutMs} ms: ${argv.slice(-8).join(' ')}\nstderr: ${f.stderr.slice(-2000)}`);
  return { ...f, wallMs: performance.now() - t0 };
}

/** SIGKILLs every arm64 process this test file started that is still running (for afterAll). */
export async function killAllArm64(): Promise<void> {
  const running = [...live];
  for (const p of running) p.kill();
  await Promise.all(running.map((p) => p.finished));
}

/** What the emulated Pi 4 reports. */
export interface EmulationInfo {
  arch: string;
  node: string;
  /** os.cpus() as the arm64 node sees it: the host's core count, the Pi 4's model name. */
  cpus: number;
  cpuModel: string;
  onnxruntime: string;
  qemu: string;
  /** The smoke model's answers, one per palette colour. */
  smoke: string[];
  checkMs: number;
}

function describeDeath(f: Finished): string {
  if (f.signal === 'SIGSEGV' || f.code === 139 || /target signal 11/.test(f.stderr)) {
    return (
      'SIGSEGV in the emulated arm64 node. onnxruntime-node crashes like this while loading when /proc/cpuinfo is ' +
      "not an ARM one (its cpuinfo library parses it): the bind mount of test/arm64/pi4-cpuinfo.txt over /proc/cpuinfo " +
      'did not take effect, or the crash has another cause.'
    );
  }
  if (f.signal) return `killed by ${f.signal}`;
  return `exit status ${f.code}`;
}

/** `describe` for a failed Finished: why, plus the tail of its stderr. */
export function failure(what: string, f: Finished): string {
  return `${what}: ${describeDeath(f)}\nstderr: ${f.stderr.slice(-3000)}\nstdout: ${f.stdout.slice(-1000)}`;
}

// Runs in the emulated node with cwd = the arm64 app: loads onnxruntime-node's arm64 binding,
// builds the demo colour model (dist/modelgen) and classifies one flat image of each palette colour.
const SMOKE = `
import * as ort from 'onnxruntime-node';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { execFileSync } from 'node:child_process';
import { buildDemoModel } from './dist/modelgen/demo-model.js';
import { DEMO_PALETTE } from './dist/camera/palette.js';
const S = 8, mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225];
const session = await ort.InferenceSession.create(buildDemoModel({ size: S }), { executionProviders: ['cpu'] });
const smoke = [];
for (const c of DEMO_PALETTE) {
  const x = new Float32Array(3 * S * S);
  for (let ch = 0; ch < 3; ch++) x.fill((c.rgb[ch] / 255 - mean[ch]) / std[ch], ch * S * S, (ch + 1) * S * S);
  const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, [1, 3, S, S]) });
  const y = Array.from(out[session.outputNames[0]].data);
  if (!y.every(Number.isFinite)) throw new Error('non-finite output ' + y);
  smoke.push(DEMO_PALETTE[y.indexOf(Math.max(...y))].name);
}
// An arm64 child of the arm64 node, as the daemon starts its validation process: through binfmt_misc.
let child;
try {
  child = execFileSync(process.execPath, ['-p', "process.arch + ' ' + require('fs').readFileSync('/proc/cpuinfo', 'utf8').includes('0xd08')"], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
} catch (err) {
  child = 'failed to start: ' + String(err.stderr || err.message).trim().slice(-500);
}
const ortVersion = JSON.parse(readFileSync('node_modules/onnxruntime-node/package.json', 'utf8')).version;
console.log(JSON.stringify({ arch: process.arch, node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '',
  cpuinfo: readFileSync('/proc/cpuinfo', 'utf8'), onnxruntime: ortVersion, smoke, child }));
`;

let checked: Promise<EmulationInfo> | undefined;

/**
 * Throws, with the reason, unless the arm64 emulation works here: the Debian packages, the
 * prepared tree, root, the private mount namespace with the Pi 4 cpuinfo, `node -p` reporting
 * arm64, and onnxruntime-node's arm64 binding loading and running a tiny model correctly.
 * Never skips: a machine that cannot run it fails the arm64 suite. Checked once per test file.
 */
export function assertEmulationWorks(): Promise<EmulationInfo> {
  checked ??= check();
  return checked;
}

async function check(): Promise<EmulationInfo> {
  const t0 = performance.now();
  const prefix = 'arm64 emulation does not work here';
  if (process.platform !== 'linux') throw new Error(`${prefix}: it needs Linux (qemu user mode, mount namespaces); this is ${process.platform}`);
  const packages: [string, string][] = [
    [QEMU, 'qemu-user-static'],
    [join(SYSROOT, 'lib', 'ld-linux-aarch64.so.1'), 'libc6-arm64-cross'],
    [join(SYSROOT, 'lib', 'libstdc++.so.6'), 'libstdc++6-arm64-cross'],
    ['/usr/bin/unshare', 'util-linux'],
  ];
  const missing = packages.filter(([f]) => !existsSync(f));
  if (missing.length) {
    throw new Error(
      `${prefix}: missing Debian package(s) ${missing.map(([f, p]) => `${p} (${f})`).join(', ')}; ` +
        '`bash test/arm64/prepare.sh` installs them when run as root (npm run test:arm64 runs it)',
    );
  }
  const tree = [ARM64_NODE, ARM64_BIN, join(ARM64_APP, 'dist', 'cli', 'main.js'), ORT_BINDING];
  const absent = tree.filter((f) => !existsSync(f));
  if (absent.length) {
    throw new Error(`${prefix}: the arm64 tree is not prepared (missing ${absent.join(', ')}); run \`npm run build && bash test/arm64/prepare.sh\` (npm run test:arm64 does both)`);
  }
  if (process.getuid?.() !== 0) {
    throw new Error(`${prefix}: not root (uid ${process.getuid?.()}); the Pi 4 /proc/cpuinfo is bind-mounted in a private mount namespace (unshare -m, mount --bind), which needs root / CAP_SYS_ADMIN`);
  }
  const ns = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /proc/cpuinfo && cat /proc/cpuinfo', PI4_CPUINFO], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (ns.status !== 0 || !ns.stdout.includes('CPU part\t: 0xd08')) {
    throw new Error(
      `${prefix}: unshare -m + mount --bind ${PI4_CPUINFO} /proc/cpuinfo failed (status ${ns.status}${ns.signal ? `, ${ns.signal}` : ''}${ns.error ? `, ${ns.error.message}` : ''}): ` +
        `${ns.stderr.trim() || 'the namespace did not show the Pi 4 cpuinfo'}. In a container, it needs --privileged or --cap-add SYS_ADMIN (and no seccomp/AppArmor block on mount).`,
    );
  }
  const binfmt = existsSync(BINFMT_ENTRY) ? readFileSync(BINFMT_ENTRY, 'utf8') : '';
  if (!binfmt.startsWith('enabled')) {
    throw new Error(
      `${prefix}: binfmt_misc has no enabled qemu-aarch64 entry (${BINFMT_ENTRY}${binfmt ? ': disabled' : ' is missing'}); the daemon's own child processes ` +
        '(the update validation process) are arm64 executables that the kernel can only start through it. `bash test/arm64/prepare.sh` registers it as root',
    );
  }
  const qemu = spawnSync(QEMU, ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0] ?? '';

  const p = await runArm64(arm64NodeCommand(['-p', "process.arch + ' ' + require('os').cpus().length"]), { timeoutMs: 120_000 });
  if (p.code !== 0) throw new Error(failure(`${prefix}: the arm64 node does not start`, p));
  if (!/^arm64 \d+$/.test(p.stdout.trim())) throw new Error(`${prefix}: the emulated node printed "${p.stdout.trim()}", not "arm64 <cpus>"`);

  const s = await runArm64(arm64NodeCommand(['--input-type=module', '-e', SMOKE]), { timeoutMs: 180_000 });
  if (s.code !== 0) throw new Error(failure(`${prefix}: onnxruntime-node does not load or run a tiny model on arm64`, s));
  const r = JSON.parse(s.stdout.trim().split('\n').at(-1)!) as Omit<EmulationInfo, 'qemu' | 'checkMs'> & { cpuinfo: string; child: string };
  if (r.arch !== 'arm64') throw new Error(`${prefix}: process.arch is ${r.arch} in the emulated node`);
  if (!r.cpuinfo.includes('CPU part\t: 0xd08')) throw new Error(`${prefix}: the emulated node does not see the Pi 4 /proc/cpuinfo`);
  if (r.child !== 'arm64 true') throw new Error(`${prefix}: an arm64 child process of the emulated node printed "${r.child}", not "arm64 true" (arm64, Pi 4 cpuinfo)`);
  const expected = ['red', 'orange', 'yellow', 'green', 'blue', 'purple', 'white', 'black'];
  if (JSON.stringify(r.smoke) !== JSON.stringify(expected)) {
    throw new Error(`${prefix}: the colour model gives wrong answers on arm64: ${r.smoke.join(',')} (expected ${expected.join(',')})`);
  }
  const info: EmulationInfo = { arch: r.arch, node: r.node, cpus: r.cpus, cpuModel: r.cpuModel, onnxruntime: r.onnxruntime, qemu, smoke: r.smoke, checkMs: performance.now() - t0 };
  console.log(
    `arm64 emulation: ${qemu}, -cpu ${QEMU_CPU}, Raspberry Pi 4 cpuinfo; node ${info.node} ${info.arch}, os.cpus() ${info.cpus} x "${info.cpuModel}", ` +
      `onnxruntime-node ${info.onnxruntime}; smoke model OK; arm64 child processes OK; checked in ${(info.checkMs / 1000).toFixed(1)} s (timings under emulation mean nothing)`,
  );
  return info;
}
