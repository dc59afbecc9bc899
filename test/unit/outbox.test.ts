import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Outbox, type OutboxConfig } from '../../src/mqtt/outbox/index.js';
import { createSystemClock } from '../../src/core/clock.js';
import { outboxStoreContract } from '../contracts/outbox-store.contract.js';

const clock = createSystemClock();

// Ordering, the bound, acks, windows, stop() and reopen: the same promises as the disk store.
outboxStoreContract('memory', () => ({ open: ({ logger, config }) => new Outbox({ logger, clock, config }) }), { reopen: 'lost', disk: 'off' });

async function makeOutbox(config: Partial<OutboxConfig> = {}): Promise<Outbox> {
  const outbox = new Outbox({ logger: pino({ level: 'silent' }), clock, config: { max_messages: 1000, window: 1, ...config } });
  await outbox.start();
  return outbox;
}

describe('Outbox in memory', () => {
  it('keeps memory bounded under a long outage', async () => {
    const outbox = await makeOutbox({ max_messages: 1000 });
    const payload = 'x'.repeat(500);
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 200_000; i++) outbox.enqueue({ topic: 't/prediction', payload: `${i}:${payload}`, qos: 1, retain: false, kind: 'prediction' });
    global.gc?.();
    const grown = process.memoryUsage().heapUsed - before;
    expect(outbox.stats()).toMatchObject({ queued: 1000, dropped: { prediction: 199_000, event: 0, status: 0 } });
    expect(outbox.messages()[0]?.payload.startsWith('199000:')).toBe(true);
    // 1,000 x ~0.5 KB retained; 200,000 would be ~100 MB. Generous: GC may not have run.
    expect(grown).toBeLessThan(60 * 1024 * 1024);
  });
});
