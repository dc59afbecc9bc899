import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { validateInChildProcess, ValidationAborted } from '../../src/daemon/validation-process.js';
import type { ValidationRequest } from '../../src/updates/validator.js';
import { buildDemoModel, demoLabels } from '../../src/modelgen/demo-model.js';
import { buildSlowModel } from '../../src/modelgen/test-models.js';
import { procInfo } from '../helpers/processes.js';
import { tempDir } from '../helpers/fixtures.js';

// The validation child process (src/daemon/validation-process.ts) with real processes: the real
// child entry from dist/ on real models, and stand-in children that crash, exit, hang or never
// get ready, to show each ends in a verdict (or, for the daemon's own problems, an error) and
// leaves no process behind.

const workerUrl = new URL('../../dist/inference/worker.js', import.meta.url);
const realChild = new URL('../../dist/daemon/validation-child.js', import.meta.url);
const logger = pino({ level: 'silent' });

function request(dir: string, model: string, extra: Partial<ValidationRequest> = {}): ValidationRequest {
  return {
    modelPath: join(dir, model),
    labelsPath: join(dir, 'labels.txt'),
    modelJson: { preset: 'imagenet' },
    validationImages: [],
    providers: ['cpu'],
    thresholds: { min_top1_agreement: 0.9, max_latency_factor: 1000 },
    ...extra,
  };
}

/** A stand-in child: says ready (unless told not to), then does `then` with the request. */
function fakeChild(dir: string, name: string, then: string, ready = true): URL {
  const file = join(dir, `${name}.mjs`);
  writeFileSync(file, `${ready ? "process.send({ type: 'ready' });\n" : ''}process.once('message', () => { ${then} });\nsetInterval(() => {}, 1000);\n`);
  return pathToFileURL(file);
}

describe('validation in a child process', () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'labels.txt'), demoLabels());
  writeFileSync(join(dir, 'good.onnx'), buildDemoModel());
  writeFileSync(join(dir, 'slow.onnx'), buildSlowModel({ repeats: 3000 }));

  it('the real child validates a good model, with oom_score_adj 1000, and exits', async () => {
    const pids: number[] = [];
    const watch = setInterval(() => {
      for (const p of findChildren()) if (!pids.includes(p)) pids.push(p);
    }, 20);
    let adj: string | undefined;
    const probe = setInterval(() => {
      for (const p of findChildren()) {
        try {
          adj = readFileSync(`/proc/${p}/oom_score_adj`, 'utf8').trim();
        } catch {
          // gone
        }
      }
    }, 20);
    try {
      const report = await validateInChildProcess({ logger, childUrl: realChild, workerUrl, logLevel: 'silent' }, request(dir, 'slow.onnx', { timingRuns: 2 }));
      expect(report.reasons).toEqual([]);
      expect(report.ok).toBe(true);
      expect(report.medianMs).toBeGreaterThan(0);
    } finally {
      clearInterval(watch);
      clearInterval(probe);
    }
    expect(pids.length).toBe(1);
    expect(adj).toBe('1000');
    await waitGone(pids[0]!);
  });

  it('a child killed by a signal, or exiting without a report, is a failed validation with the reason', async () => {
    const cases: [string, string, RegExp][] = [
      ['segv', "process.kill(process.pid, 'SIGSEGV');", /^the validation process was killed by SIGSEGV after/],
      ['sigkill', "process.kill(process.pid, 'SIGKILL');", /^the validation process was killed by SIGKILL \(out of memory\?\) after/],
      ['exit', "process.stderr.write('terminate called after throwing an instance of Ort::Exception\\n'); process.exit(3);", /^the validation process exited with code 3 without a report; its last words: terminate called/],
    ];
    for (const [name, then, reason] of cases) {
      const report = await validateInChildProcess({ logger, childUrl: fakeChild(dir, name, then), workerUrl, logLevel: 'silent' }, request(dir, 'good.onnx'));
      expect(report.ok, name).toBe(false);
      expect(report.reasons.join('; '), name).toMatch(reason);
    }
  });

  it('a child that hangs past the timeout is killed: a failed validation', async () => {
    const t0 = performance.now();
    const report = await validateInChildProcess({ logger, childUrl: fakeChild(dir, 'hang', ''), workerUrl, logLevel: 'silent', graceMs: 300 }, request(dir, 'good.onnx', { timeoutMs: 500 }));
    const ms = performance.now() - t0;
    expect(report.ok).toBe(false);
    expect(report.reasons[0]).toBe('validation did not finish within 800 ms (the validation process was killed)');
    expect(ms).toBeLessThan(5_000);
  });

  it('a shutdown kills the child at once and rejects (no verdict: not a refusal)', async () => {
    const ac = new AbortController();
    const run = validateInChildProcess({ logger, childUrl: realChild, workerUrl, logLevel: 'silent' }, request(dir, 'slow.onnx', { timingRuns: 50 }), ac.signal);
    await new Promise((r) => setTimeout(r, 1_500));
    const children = findChildren();
    expect(children.length).toBe(1);
    const t0 = performance.now();
    ac.abort();
    await expect(run).rejects.toBeInstanceOf(ValidationAborted);
    expect(performance.now() - t0).toBeLessThan(2_000);
    await waitGone(children[0]!);
  });

  it('a child that dies before it is ready is the daemon problem: rejects, no verdict', async () => {
    const never = await validateInChildProcess({ logger, childUrl: fakeChild(dir, 'unready', '', false), workerUrl, logLevel: 'silent', graceMs: 0 }, request(dir, 'good.onnx', { timeoutMs: 300 }));
    expect(never.reasons[0]).toMatch(/did not finish within 300 ms/);
    const run = validateInChildProcess({ logger, childUrl: pathToFileURL(join(dir, 'missing.mjs')), workerUrl, logLevel: 'silent' }, request(dir, 'good.onnx'));
    await expect(run).rejects.toThrow(/before it was ready/);
  });
});

/** Live children of this process running the validation child entry (real or stand-in). */
function findChildren(): number[] {
  const out: number[] = [];
  const children = readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim();
  for (const pid of children ? children.split(/\s+/).map(Number) : []) {
    const info = procInfo(pid);
    if (info?.argv.some((a) => a.includes('validation-child') || a.endsWith('.mjs'))) out.push(pid);
  }
  return out;
}

async function waitGone(pid: number): Promise<void> {
  const t0 = Date.now();
  while (procInfo(pid)) {
    if (Date.now() - t0 > 5_000) throw new Error(`validation process ${pid} still alive`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
