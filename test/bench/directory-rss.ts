/**
 * Benchmark for issue 12, point 4: the daemon's peak RSS with a directory camera holding one
 * hostile file and a good JPEG — a symlink to /dev/zero, a symlink to a FIFO, a 1.5 GB sparse
 * .jpg — each case in a daemon of its own, for SECONDS. Also prints whether the good frame was
 * classified (the camera went on), /healthz's status and how long SIGTERM took to stop it.
 *
 *   npm run build && npx vite-node test/bench/directory-rss.ts -- [--seconds 30] [--root DIR]
 *
 * --root runs another checkout's built daemon (DIR/bin/edge-classifier), e.g. the code before
 * the fix: git worktree add /tmp/old <commit>; ln -s $PWD/node_modules /tmp/old/; (cd /tmp/old
 * && npx tsc -p tsconfig.build.json); then --root /tmp/old. A daemon past --cap-mib is killed.
 * Not a test (vitest never picks it up); Linux only (/proc).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { colourImage, tempDir, writeColourModel } from '../helpers/fixtures.js';
import { freePort } from '../helpers/ports.js';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '30' }, root: { type: 'string', default: '.' }, 'cap-mib': { type: 'string', default: '6144' } },
});
const seconds = Number(values.seconds);
const capMiB = Number(values['cap-mib']);
const bin = join(resolve(values.root), 'bin', 'edge-classifier');
const dir = tempDir('ec-dir-rss-');
const { model, labels } = writeColourModel(join(dir, 'm'));
const good = await colourImage('red');

const CASES: Record<string, (at: string) => void> = {
  'symlink to /dev/zero': (at) => symlinkSync('/dev/zero', join(at, 'a-zero.jpg')),
  'symlink to a FIFO': (at) => {
    execFileSync('mkfifo', [join(at, '.fifo')]);
    symlinkSync(join(at, '.fifo'), join(at, 'a-fifo.jpg'));
  },
  '1.5 GB sparse .jpg': (at) => {
    writeFileSync(join(at, 'a-sparse.jpg'), '');
    truncateSync(join(at, 'a-sparse.jpg'), 1536 * 1024 * 1024);
  },
};

const rssMiB = (pid: number): number => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

async function metric(url: string, name: string): Promise<number | undefined> {
  try {
    const text = await (await fetch(`${url}metrics`, { signal: AbortSignal.timeout(2_000) })).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{camera="cam"}`));
    return line ? Number(line.split(' ').at(-1)) : undefined;
  } catch {
    return undefined;
  }
}

async function healthz(url: string): Promise<string> {
  try {
    const res = await fetch(`${url}healthz`, { signal: AbortSignal.timeout(2_000) });
    return `${res.status} ${(await res.json() as { status: string }).status}`;
  } catch (err) {
    return `no answer (${(err as Error).message})`;
  }
}

async function run(name: string, make: (at: string) => void): Promise<string> {
  const at = join(dir, name.replace(/\W+/g, '-'));
  mkdirSync(at);
  make(at);
  writeFileSync(join(at, 'b-good.jpg'), good);
  const config = join(at, '.config.json');
  writeFileSync(
    config,
    JSON.stringify({
      device_id: 'rss',
      model: { path: model, labels, execution_providers: ['cpu'] },
      cameras: [{ id: 'cam', source: { type: 'directory', path: at, fps: 2, loop: true } }],
      mqtt: { url: 'embedded', embedded: { host: '127.0.0.1', port: await freePort() } },
      http: { port: 0 },
      state_dir: join(at, '.state'),
      log: { level: 'info' },
    }),
  );
  const child = spawn(process.execPath, [bin, 'run', '--config', config], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  let peak = 0;
  let killed: number | undefined;
  const started = performance.now();
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, rssMiB(child.pid!));
      if (peak > capMiB && killed === undefined) {
        killed = (performance.now() - started) / 1000;
        child.kill('SIGKILL');
      }
    } catch {
      // exited
    }
  }, 50);
  const deadline = performance.now() + seconds * 1000;
  while (performance.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 250));
  const url = /"msg":"HTTP server listening"/.test(out) ? /"url":"([^"]+)"/.exec(out.split('\n').find((l) => l.includes('HTTP server listening'))!)?.[1] : undefined;
  const classified = url && killed === undefined ? await metric(url, 'edge_classifier_frames_classified_total') : undefined;
  const health = url && killed === undefined ? await healthz(url) : 'n/a';
  const t0 = performance.now();
  const stopped = new Promise<void>((done) => child.once('exit', () => done()));
  if (child.exitCode === null) child.kill('SIGTERM');
  const timedOut = await Promise.race([stopped.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 20_000))]);
  const stopMs = performance.now() - t0;
  if (timedOut) child.kill('SIGKILL');
  clearInterval(sampler);
  const stop = killed !== undefined ? `SIGKILLed at the ${capMiB} MiB cap after ${killed.toFixed(1)} s` : timedOut ? 'SIGTERM: no exit within 20 s (SIGKILLed)' : `SIGTERM: exit ${child.exitCode} in ${stopMs.toFixed(0)} ms`;
  return `${name.padEnd(22)} peak RSS ${peak.toFixed(0).padStart(5)} MiB | good frames classified: ${classified ?? 'unknown'} | /healthz ${health} | ${stop}`;
}

console.log(`${bin}, ${seconds} s per case`);
for (const [name, make] of Object.entries(CASES)) console.log(await run(name, make));
rmSync(dir, { recursive: true, force: true });
