import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { connectAsync } from 'mqtt';
import { Mosquitto } from '../helpers/mosquitto.js';
import { findProcesses, procInfo, type ProcInfo } from '../helpers/processes.js';
import { ownedProcesses } from '../helpers/leftovers.js';

// The setup file's per-test cleanup (test/setup/kill-leftovers.ts, test/helpers/leftovers.ts):
// the first test leaves processes running the way a failed or timed-out test does, the second
// checks that they were killed in between, and that what belongs to the file was not. (The
// first test's "[leftovers] ... killed" warning is expected.) A timed-out test is cleaned up by
// the same afterEach; that cannot be a committed test, since it fails by design.

const tag = Math.floor(Math.random() * 1e6); // tells our sleeps from anyone else's
const sleeps = (seconds: number): ProcInfo[] => findProcesses((argv) => argv[0] === 'sleep' && argv[1] === String(seconds));
const alive = (p: ProcInfo): boolean => procInfo(p.pid)?.start === p.start;

async function until<T>(get: () => T | undefined, what: string): Promise<T> {
  for (let i = 0; i < 500; i++) {
    const v = get();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${what} not seen`);
}

describe('processes left running by a test', () => {
  let broker: Mosquitto;
  let fromBeforeAll: ChildProcess;
  const left: Record<string, ProcInfo> = {};
  let brokerPid: number | undefined;

  beforeAll(async () => {
    broker = await Mosquitto.start();
    fromBeforeAll = spawn('sleep', [String(1_000_000 + tag)], { stdio: 'ignore' });
  });

  afterAll(async () => {
    fromBeforeAll.kill('SIGKILL');
    await broker?.stop();
  });

  it('leaves a child, a detached process group with a grandchild, an orphan, and the file\'s broker restarted', async () => {
    const base = 2_000_000 + tag * 10;
    spawn('sleep', [String(base + 1)], { stdio: 'ignore' });
    // Its own group and session, a child of its own; the shell exec()s into the second sleep.
    spawn('sh', ['-c', `sleep ${base + 2} & exec sleep ${base + 3}`], { detached: true, stdio: 'ignore' });
    // Orphaned at once: its parent (the subshell) exits, so init adopts it; only the tag it
    // inherited says whose it is.
    spawn('sh', ['-c', `(setsid sleep ${base + 4} &)`], { stdio: 'ignore' });
    for (const n of [1, 2, 3, 4]) left[n] = await until(() => sleeps(base + n)[0], `sleep ${base + n}`);
    expect(left[4]!.ppid).not.toBe(process.pid);
    // Every one of them is recognised as this worker's.
    const owned = new Set(ownedProcesses().map((p) => p.pid));
    for (const p of Object.values(left)) expect(owned.has(p.pid), p.argv.join(' ')).toBe(true);

    // A restart inside a test: still the file's broker (started in beforeAll).
    await broker.stop();
    await broker.restart();
    brokerPid = ownedProcesses().find((p) => p.argv[0]?.endsWith('mosquitto'))?.pid;
    expect(brokerPid).toBeDefined();
  });

  it('the next test finds them gone, and the file\'s processes still there', async () => {
    expect(Object.keys(left)).toHaveLength(4); // the first test ran
    for (const p of Object.values(left)) expect(alive(p), `${p.argv.join(' ')} (pid ${p.pid})`).toBe(false);
    expect(procInfo(brokerPid!)).toBeDefined();
    const client = await connectAsync(broker.url, { reconnectPeriod: 0, connectTimeout: 5_000 });
    await client.endAsync();
    expect(fromBeforeAll.exitCode).toBeNull();
    expect(procInfo(fromBeforeAll.pid!)).toBeDefined();
  });
});
