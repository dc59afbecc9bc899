import { afterAll, afterEach, beforeEach } from 'vitest';
import { describeProcs, fileLeftovers, reap, tagChildren, testLeftovers, testStarted } from '../helpers/leftovers.js';

// A setupFile of the integration and real suites (vitest.config.ts): nothing a test starts
// outlives it, even when it fails or times out. See test/helpers/leftovers.ts.
// These hooks are registered before the test file's own, so they run first before a test and
// last after it (vitest's `stack` hook order): the file's afterEach/afterAll stop their
// processes gracefully first; what those leave is SIGKILLed here.

// A process given SIGTERM or SIGKILL by the test's own cleanup may take a moment to go.
const GRACE_MS = 2_000;

tagChildren();

beforeEach(() => testStarted());

afterEach(async (ctx) => {
  const killed = await reap(testLeftovers(), GRACE_MS);
  if (killed.length > 0) console.warn(`[leftovers] "${ctx.task.name}" left ${killed.length} process(es) running; killed:${describeProcs(killed)}`);
});

afterAll(async (suite) => {
  const killed = await reap(fileLeftovers(), GRACE_MS);
  if (killed.length > 0) console.warn(`[leftovers] ${suite.name} left ${killed.length} process(es) running after its last test; killed:${describeProcs(killed)}`);
});
