import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { pino } from 'pino';
import { Outbox } from '../../src/mqtt/outbox/index.js';
import { createSystemClock } from '../../src/core/clock.js';
import { tempDir } from '../helpers/fixtures.js';
import { REPO } from '../helpers/cli.js';

// The newest KEEP messages are never acked by the child (see the helper).
const KEEP = 200;
const TRIALS = 20;

interface Trial {
  fsync: 'always' | 'interval';
  killAfterMs: number;
  reported: { hi: number; lo: number } | undefined;
  recovered: number;
  first: number;
  last: number;
  torn: boolean;
  /** A `.tmp` was left: killed during a compaction. */
  midCompaction: boolean;
}

/** Runs the child until it has printed `ready`, waits, SIGKILLs it; returns its stdout. */
function runAndKill(script: string, path: string, fsync: string, killAfterMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [script, path, fsync], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timer: NodeJS.Timeout | undefined;
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!timer && out.includes('\n')) timer = setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
    });
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') resolve(out);
      else reject(new Error(`child exited by itself (code ${code}): ${err}`));
    });
  });
}

describe('outbox disk store under SIGKILL', () => {
  const buildDir = join(REPO, '.tmp', `outbox-crash-${process.pid}`);
  const script = join(buildDir, 'child.mjs');

  beforeAll(async () => {
    mkdirSync(buildDir, { recursive: true });
    // Bundled next to the repo so that `pino` still resolves from node_modules.
    await build({
      entryPoints: [join(REPO, 'test/helpers/outbox-crash-child.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      outfile: script,
      logLevel: 'warning',
    });
  });

  afterAll(() => rmSync(buildDir, { recursive: true, force: true }));

  it(`loses nothing that was reported durable, over ${TRIALS} kills at random points`, async () => {
    const path = join(tempDir(), 'outbox.log');
    const trials: Trial[] = [];
    for (let t = 0; t < TRIALS; t++) {
      const fsync = t % 2 === 0 ? 'always' : 'interval';
      const killAfterMs = Math.round(20 + Math.random() * 600);
      const out = await runAndKill(script, path, fsync, killAfterMs);
      const lines = out.split('\n').slice(0, -1); // the part after the last newline may be cut
      expect(lines[0]).toMatch(/^ready \d+ \d+ \d+$/);
      const last = lines.filter((l) => l.startsWith('D ')).at(-1)?.split(' ').map(Number);
      const reported = last ? { hi: last[1] ?? 0, lo: last[2] ?? 0 } : undefined;

      const midCompaction = existsSync(`${path}.tmp`);
      const logs: string[] = [];
      const logger = pino({ level: 'warn' }, { write: (s: string) => void logs.push(s) });
      const outbox = new Outbox({ logger, clock: createSystemClock(), config: { max_messages: 1e6, disk: { path, max_bytes: 1e9, fsync: 'always' } } });
      await outbox.start();
      const msgs = outbox.messages();
      await outbox.stop();
      expect(outbox.stats().disk).toBe('ok');
      expect(logs.filter((l) => l.includes('corrupted'))).toEqual([]);

      // In order, no duplicates, no gaps (acks only ever remove a prefix), no garbage.
      msgs.forEach((m, i) => {
        if (i > 0) expect(m.id, `trial ${t}`).toBe((msgs[i - 1]?.id ?? 0) + 1);
        expect(m.topic).toBe('ec/crash/cam/prediction');
        const p = JSON.parse(m.payload) as { len: number; pad: string };
        expect(p.pad).toBe('x'.repeat(p.len));
      });
      const first = msgs[0]?.id ?? 0;
      const lastId = msgs.at(-1)?.id ?? 0;
      if (reported) {
        // Everything reported added is there (or later); nothing reported removed came back;
        // the newest KEEP were never acked, so they must all be there.
        expect(lastId, `trial ${t}`).toBeGreaterThanOrEqual(reported.hi);
        expect(first, `trial ${t}`).toBeGreaterThanOrEqual(reported.lo);
        expect(first, `trial ${t}`).toBeLessThanOrEqual(Math.max(reported.lo, reported.hi + 40 - KEEP));
      }
      trials.push({ fsync, killAfterMs, reported, recovered: msgs.length, first, last: lastId, torn: logs.some((l) => l.includes('incomplete last record')), midCompaction });
    }
    const withReports = trials.filter((t) => t.reported);
    console.log(
      `outbox crash test: ${trials.length} SIGKILLs, ${withReports.length} after at least one durable report, ` +
        `${trials.filter((t) => t.torn).length} with a torn last record skipped, ${trials.filter((t) => t.midCompaction).length} during a compaction; ` +
        `0 lost, 0 duplicated, 0 corrupt\n` +
        trials
          .map(
            (t, i) =>
              `  #${i} fsync=${t.fsync} kill@${t.killAfterMs}ms reported=${t.reported ? `${t.reported.lo}..${t.reported.hi}` : '-'} ` +
              `recovered=${t.recovered} (${t.first}..${t.last})${t.torn ? ' torn' : ''}${t.midCompaction ? ' mid-compaction' : ''}`,
          )
          .join('\n'),
    );
    expect(withReports.length).toBeGreaterThanOrEqual(TRIALS / 2);
    // The backlog grew across restarts beyond the never-acked KEEP: the dels were exercised too.
    expect(trials.at(-1)?.first ?? 0).toBeGreaterThan(1);
  });
});
