import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { ModelStore } from '../../src/updates/model-store.js';
import { createSystemClock } from '../../src/core/clock.js';
import { sha256File } from '../../src/inference/model-identity.js';
import { tempDir } from '../helpers/fixtures.js';
import { REPO } from '../helpers/cli.js';

const TRIALS = 20;
const CHILD = join(REPO, 'test/helpers/model-store-crash-child.ts');
// vitest ships vite-node; its CLI runs the TypeScript child in its own process.
const VITE_NODE = join(REPO, 'node_modules/vite-node/vite-node.mjs');

/** Starts the child, SIGKILLs its process group `killAfterMs` after `ready`; returns its stdout. */
function runAndKill(stateDir: string, killAfterMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    // Its own process group, so that the kill also takes vite-node's esbuild helper.
    const proc = spawn(process.execPath, [VITE_NODE, CHILD, stateDir], { cwd: REPO, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timer: NodeJS.Timeout | undefined;
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!timer && out.includes('\n')) timer = setTimeout(() => process.kill(-proc.pid!, 'SIGKILL'), killAfterMs);
    });
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') resolve(out);
      else reject(new Error(`child exited by itself (code ${code}): ${err}`));
    });
  });
}

/** What the kill left behind, before start() cleans it up. */
function leftovers(stateDir: string): string[] {
  const models = join(stateDir, 'models');
  const names = existsSync(models) ? readdirSync(models) : [];
  const found = names.filter((n) => /\.(partial|deleting|tmp)$/.test(n)).map((n) => n.replace(/^.*\./, '.'));
  if (existsSync(join(stateDir, 'update-state.json.tmp'))) found.push('state.tmp');
  return found;
}

describe('model store under SIGKILL', () => {
  it(`starts on a complete model (the old or the new one) after ${TRIALS} kills at random points`, { timeout: 240_000 }, async () => {
    const stateDir = tempDir('ec-store-crash-');
    const hashes = new Map<string, Record<string, string>>();
    let committed: string | undefined; // the last version the child saw current
    const report: string[] = [];
    const outcomes = { old: 0, new: 0, steady: 0 };
    let iterations = 0;
    const interrupted = new Map<string, number>(); // leftover kind -> kills that left one
    for (let t = 0; t < TRIALS; t++) {
      const killAfterMs = Math.round(Math.random() * 700);
      const out = await runAndKill(stateDir, killAfterMs);
      const lines = out.split('\n').slice(0, -1); // the part after the last newline may be cut
      expect(lines[0], `trial ${t}`).toMatch(/^ready /);
      expect(lines[0]).toBe(`ready ${committed ?? '-'}`); // what the previous trial's check saw
      let pending: string | undefined;
      for (const line of lines.slice(1)) {
        const [kind, version = '', json] = line.split(' ');
        if (kind === 'H') hashes.set(version, JSON.parse(json ?? '{}') as Record<string, string>);
        if (kind === 'S') pending = version;
        if (kind === 'C') [committed, pending] = [version, undefined];
        if (kind === 'C') iterations++;
      }
      const left = leftovers(stateDir);
      for (const kind of left) interrupted.set(kind, (interrupted.get(kind) ?? 0) + 1);

      const store = new ModelStore({
        logger: pino({ level: 'silent' }),
        clock: createSystemClock(),
        config: { state_dir: stateDir, keep_versions: 3, probation: { seconds: 300, max_inference_errors: 5, max_restarts: 3 } },
      });
      await store.start();
      const current = await store.current();
      // The new version if the switch got far enough, else the old one; never none once one was current.
      const allowed = [committed, pending].filter((v) => v !== undefined);
      if (committed === undefined && pending === undefined) expect(current).toBeUndefined();
      else expect(allowed, `trial ${t}: current ${current?.version}`).toContain(current?.version);
      const outcome = pending === undefined ? 'steady' : current?.version === pending ? 'new' : 'old';
      outcomes[outcome]++;

      // Every version left on disk (the current one included) is complete, byte for byte.
      const models = join(stateDir, 'models');
      expect(readdirSync(models).filter((n) => /\.(partial|deleting|tmp)$/.test(n))).toEqual([]);
      for (const { version } of await store.versions()) {
        const expected = hashes.get(version);
        expect(expected, `hashes of ${version}`).toBeDefined();
        for (const [file, sha] of Object.entries(expected ?? {})) {
          expect(await sha256File(join(models, version, file)), `trial ${t}: ${version}/${file}`).toBe(sha);
        }
      }
      expect(current?.modelPath).toBe(current ? join(models, current.version, 'model.onnx') : undefined);
      committed = current?.version;
      report.push(
        `  #${t} kill@${killAfterMs}ms after ${lines.length - 1} lines: left [${left.join(' ')}] ` +
          `-> current ${current?.version ?? '-'} (${outcome}${pending ? `, switching to ${pending}` : ''}), ${(await store.versions()).length} versions`,
      );
      await store.stop();
    }
    console.log(
      `model store crash test: ${TRIALS} SIGKILLs, ${iterations} completed switches in all; ` +
        `${outcomes.steady} between switches, ${outcomes.new} mid-switch on the new version, ${outcomes.old} mid-switch on the old one; ` +
        `cleaned up: ${[...interrupted].map(([k, n]) => `${n}x ${k}`).join(', ') || 'nothing'}; 0 partial, 0 hash mismatches\n${report.join('\n')}`,
    );
    expect(committed).toBeDefined();
  });
});
