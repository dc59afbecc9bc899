/**
 * Child process for test/integration/outbox-crash.test.ts (bundled by the test with esbuild,
 * since Node 20 cannot run TypeScript): an Outbox with a disk store, no broker. It enqueues
 * messages as fast as it can while a fake delivery acknowledges them in order whenever more
 * than KEEP are queued (so the log sees adds, dels and compactions, and the newest KEEP are
 * never acked), until the test SIGKILLs it.
 *
 *   node child.mjs <log path> <always|interval>
 *
 * stdout (pipes are synchronous on Linux, so a printed line was printed before any kill):
 *   ready <restored count> <first id> <last id>
 *   D <hi> <lo>     after a flush: every id <= hi was added durably, every id < lo removed durably
 */
import { pino } from 'pino';
import { Outbox } from '../../src/mqtt/outbox/index.js';
import { createSystemClock } from '../../src/core/clock.js';

export const KEEP = 200;

const [path, fsync] = process.argv.slice(2);
if (!path || (fsync !== 'always' && fsync !== 'interval')) throw new Error('usage: child <path> <always|interval>');

const clock = createSystemClock();
const outbox = new Outbox({
  logger: pino({ level: 'warn' }, pino.destination(2)),
  clock,
  config: { max_messages: 1_000_000, window: 8, disk: { path, max_bytes: 1e9, fsync, fsync_interval_ms: 20, compact_min_bytes: 16 * 1024 } },
});
await outbox.start();
const restored = outbox.messages();
process.stdout.write(`ready ${restored.length} ${restored[0]?.id ?? 0} ${restored.at(-1)?.id ?? 0}\n`);

void outbox.deliver(async () => {
  while (outbox.stats().queued <= KEEP + 8) await clock.sleep(1);
});

let n = 0;
for (;;) {
  let hi = 0;
  for (let i = 0; i < 20; i++) {
    const len = (n * 7919) % 200;
    hi = outbox.enqueue({ topic: 'ec/crash/cam/prediction', payload: JSON.stringify({ n: n++, len, pad: 'x'.repeat(len) }), qos: 1, retain: false, kind: 'prediction' }).id;
  }
  const lo = outbox.messages()[0]?.id ?? hi + 1;
  if (!(await outbox.flush())) throw new Error('disk store failed');
  process.stdout.write(`D ${hi} ${lo}\n`);
}
