import { describeProcs, ownedProcesses, reap, RUN_ENV } from '../helpers/leftovers.js';

// vitest globalSetup: gives the run an id that every process started by its test files
// inherits (test/helpers/leftovers.ts), and at the end kills whatever of theirs is still
// running: a process started after its file's cleanup, by a timed-out test's abandoned
// promise, say. Processes of other vitest runs on the machine (other ids) are left alone.

export default function setup(): () => Promise<void> {
  const run = `${Date.now().toString(36)}-${process.pid}`;
  process.env[RUN_ENV] = run;
  return async () => {
    const killed = await reap(ownedProcesses(run), 2_000);
    if (killed.length > 0) console.warn(`[leftovers] the test run left ${killed.length} process(es) running at its end; killed:${describeProcs(killed)}`);
  };
}
