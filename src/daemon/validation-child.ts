/**
 * The entry of the validation child process (see validation-process.ts): validates one
 * candidate with the validator, exactly as the daemon would in-process, and sends the report
 * back over the IPC channel. It runs nothing else, so whatever the candidate does to it (eat all
 * memory, crash onnxruntime, hang) costs this process, never the daemon.
 *
 * First of all it volunteers as the OOM killer's victim: oom_score_adj 1000 (raising one's own
 * is allowed without privileges), so when the unit's cgroup (MemoryMax=) or the machine runs
 * out of memory, the kernel kills the candidate's process rather than the daemon.
 */
import { writeFileSync } from 'node:fs';
import type { ChildRequest, ChildMessage } from './validation-process.js';

let oomScoreAdj: string | undefined;
try {
  writeFileSync('/proc/self/oom_score_adj', '1000');
} catch (err) {
  oomScoreAdj = (err as Error).message;
}

function send(message: ChildMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });
}

// The daemon went away (killed, crashed): nobody wants the result, and the memory is better freed.
process.on('disconnect', () => process.exit(2));

// Loaded before `ready`: a child that cannot even load the validator is the daemon's problem
// (an incomplete install), not the candidate's, and the parent must not refuse the release for it.
const [{ validateModel }, { createLogger }, { createSystemClock }] = await Promise.all([
  import('../updates/validator.js'),
  import('../core/logger.js'),
  import('../core/clock.js'),
]);

process.once('message', (raw: unknown) => {
  void (async () => {
    const msg = raw as ChildRequest;
    const logger = createLogger({ level: msg.logLevel }).child({ module: 'validator', process: 'validation' });
    if (oomScoreAdj !== undefined) logger.warn({ err: oomScoreAdj }, 'cannot raise oom_score_adj; the OOM killer may pick the daemon instead');
    try {
      const report = await validateModel({ logger, clock: createSystemClock(), workerUrl: new URL(msg.workerUrl) }, msg.request);
      await send({ type: 'report', report });
      process.exit(0);
    } catch (err) {
      await send({ type: 'failed', error: (err as Error).message ?? String(err) });
      process.exit(1);
    }
  })();
});

await send({ type: 'ready' });
