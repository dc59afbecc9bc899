/**
 * What every outbox store promises, as one suite that each store's test file runs with a
 * factory (the pattern of MQTT.js's test/node/abstract_store.ts). The stores are the two ways
 * an Outbox keeps its queue: in memory only (no `disk` config) and in the append-only log
 * (FileStore, `disk` set). The promises are those of outbox.ts and types.ts: ordering, the
 * bound and what it drops, removal only once acknowledged, windowed delivery, stop(); and, for
 * what differs between stores, the `traits` the store declares (a reopen restores or loses the
 * queue; flush() and stats().disk say whether there is a disk).
 *
 * Not here: what is specific to one store (the log's torn and corrupt records, compaction,
 * fsync batching, disk errors, max_bytes; the memory store's heap bound) stays in its own file.
 * Files here are not collected as tests themselves (vitest includes only *.test.ts).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { Outbox, OutboxConfig, OutboxMessage, MessageKind, Send } from '../../src/mqtt/outbox/index.js';
import type { Logger } from '../../src/core/logger.js';

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

/** The outbox settings each case chooses; the store adds its own backing (e.g. `disk`). */
export type ContractConfig = Pick<OutboxConfig, 'max_messages' | 'window'>;

/**
 * One store instance: `open` builds an Outbox (not started) on it. Called again after the
 * previous outbox stopped, it must open the same backing: that is a daemon restart.
 */
export type StoreFactory = () => { open(deps: { logger: Logger; config: ContractConfig }): Outbox };

export interface OutboxStoreTraits {
  /** What a reopen finds: the unacknowledged messages with ids continuing, or nothing (memory only). */
  reopen: 'restored' | 'lost';
  /** stats().disk while the store works. */
  disk: 'off' | 'ok';
}

interface Opened {
  outbox: Outbox;
  logs: LogLine[];
}

function msg(kind: MessageKind, n: number | string, topic = `t/${kind}`): { topic: string; payload: string; qos: 1; retain: boolean; kind: MessageKind } {
  return { topic, payload: `${kind[0]}${n}`, qos: 1, retain: kind === 'status', kind };
}

function queuedPayloads(outbox: Outbox): string[] {
  return outbox.messages().map((m) => m.payload);
}

interface Pending {
  msg: OutboxMessage;
  ok: () => void;
  fail: (e?: Error) => void;
}

/** A send the test settles by hand, in any order. */
function manualSend(): { send: Send; pending: Pending[] } {
  const pending: Pending[] = [];
  const send: Send = (m) =>
    new Promise<void>((resolve, reject) => pending.push({ msg: m, ok: resolve, fail: (e) => reject(e ?? new Error('no PUBACK')) }));
  return { send, pending };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Delivers (acks) the first `n` queued messages, then stops delivering (the store tests use it too). */
export async function ack(outbox: Outbox, n: number): Promise<void> {
  let left = n;
  const ac = new AbortController();
  await outbox.deliver(
    () => {
      if (left <= 0) return Promise.reject(new Error('enough'));
      if (--left === 0) setImmediate(() => ac.abort());
      return Promise.resolve();
    },
    { signal: ac.signal },
  );
}

export function outboxStoreContract(name: string, makeStore: StoreFactory, traits: OutboxStoreTraits): void {
  describe(`outbox store contract: ${name}`, () => {
    let store: ReturnType<StoreFactory>;
    const opened: Outbox[] = [];

    /** Opens and starts an outbox on this test's store; every one is stopped after the test. */
    async function open(config: Partial<ContractConfig> = {}): Promise<Opened> {
      const logs: LogLine[] = [];
      const logger = pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s) as LogLine) });
      const outbox = store.open({ logger, config: { max_messages: 1000, window: 1, ...config } });
      opened.push(outbox);
      await outbox.start();
      return { outbox, logs };
    }

    beforeEach(() => {
      store = makeStore();
    });
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((o) => o.stop()));
    });

    it('assigns increasing ids and delivers in order, waiting for new messages', async () => {
      const { outbox } = await open({ window: 4 });
      expect(outbox.stats()).toMatchObject({ queued: 0, sent: 0, disk: traits.disk });
      const delivered: string[] = [];
      const ac = new AbortController();
      const ids = [outbox.enqueue(msg('prediction', 1)).id, outbox.enqueue(msg('event', 2)).id, outbox.enqueue(msg('status', 3)).id];
      expect(ids).toEqual([1, 2, 3]);
      const done = outbox.deliver((m) => Promise.resolve(void delivered.push(m.payload)), { signal: ac.signal });
      await tick();
      outbox.enqueue(msg('prediction', 4));
      await tick();
      expect(delivered).toEqual(['p1', 'e2', 's3', 'p4']);
      expect(outbox.stats()).toMatchObject({ queued: 0, sent: 4, disk: traits.disk });
      ac.abort();
      expect(await done).toEqual({ stopped: 'aborted' });
    });

    it('drops the oldest prediction first, then the oldest event, never a status, and counts them', async () => {
      const { outbox, logs } = await open({ max_messages: 4 });
      outbox.enqueue(msg('event', 1));
      outbox.enqueue(msg('prediction', 2));
      outbox.enqueue(msg('status', 3, 's/a'));
      outbox.enqueue(msg('prediction', 4));
      outbox.enqueue(msg('prediction', 5)); // over: p2 goes
      expect(queuedPayloads(outbox)).toEqual(['e1', 's3', 'p4', 'p5']);
      outbox.enqueue(msg('event', 6)); // over: p4 goes (events are kept while predictions remain)
      outbox.enqueue(msg('event', 7)); // over: p5 goes
      expect(queuedPayloads(outbox)).toEqual(['e1', 's3', 'e6', 'e7']);
      outbox.enqueue(msg('event', 8)); // no prediction left: the oldest event, e1
      outbox.enqueue(msg('prediction', 9)); // the newest prediction is the only one: it goes itself
      expect(queuedPayloads(outbox)).toEqual(['s3', 'e6', 'e7', 'e8']);
      for (const t of ['s/b', 's/c', 's/d', 's/e', 's/f']) outbox.enqueue(msg('status', t, t));
      // Statuses are never dropped: the events go, the queue holds one status per topic.
      expect(queuedPayloads(outbox)).toEqual(['s3', 'ss/b', 'ss/c', 'ss/d', 'ss/e', 'ss/f']);
      expect(outbox.stats().dropped).toEqual({ prediction: 4, event: 4, status: 0 });
      const warnings = logs.filter((l) => l.msg.startsWith('outbox full'));
      expect(warnings.map((w) => w.kind)).toEqual(['prediction', 'event']); // once per kind, not per drop
    });

    it('replaces a still-queued status for the same topic with the newer one, at the tail', async () => {
      const { outbox } = await open();
      outbox.enqueue(msg('status', 'old', 'cam/status'));
      outbox.enqueue(msg('prediction', 1));
      outbox.enqueue(msg('status', 'new', 'cam/status'));
      outbox.enqueue(msg('status', 'x', 'other/status'));
      expect(queuedPayloads(outbox)).toEqual(['p1', 'snew', 'sx']);
      expect(outbox.stats().dropped.status).toBe(1);
    });

    it('does not replace or drop a message that is already being sent', async () => {
      const { outbox } = await open({ max_messages: 2, window: 2 });
      const { send, pending } = manualSend();
      outbox.enqueue(msg('status', 'old', 'cam/status'));
      outbox.enqueue(msg('prediction', 1));
      const ac = new AbortController();
      const done = outbox.deliver(send, { signal: ac.signal });
      await tick();
      expect(pending.map((p) => p.msg.payload)).toEqual(['sold', 'p1']);
      outbox.enqueue(msg('status', 'new', 'cam/status')); // sold is in flight: both stay
      outbox.enqueue(msg('prediction', 2)); // over the bound, but p1 is in flight: p2 itself goes
      expect(queuedPayloads(outbox)).toEqual(['sold', 'p1', 'snew']);
      for (const p of pending) p.ok();
      await tick();
      expect(pending.map((p) => p.msg.payload)).toEqual(['sold', 'p1', 'snew']);
      ac.abort();
      await done;
    });

    it('stops at the first failure, keeps that message at the head and resends it once, in order', async () => {
      const { outbox } = await open({ window: 1 });
      for (let i = 1; i <= 5; i++) outbox.enqueue(msg('prediction', i));
      const broker: string[] = [];
      let attempts = 0;
      const flaky: Send = (m) => {
        attempts++;
        if (m.payload === 'p3' && attempts === 3) return Promise.reject(new Error('connection closed'));
        broker.push(m.payload);
        return Promise.resolve();
      };
      const first = await outbox.deliver(flaky);
      expect(first).toMatchObject({ stopped: 'failed', id: 3 });
      expect(broker).toEqual(['p1', 'p2']);
      expect(queuedPayloads(outbox)).toEqual(['p3', 'p4', 'p5']);
      const ac = new AbortController();
      const second = outbox.deliver(flaky, { signal: ac.signal });
      await tick();
      expect(broker).toEqual(['p1', 'p2', 'p3', 'p4', 'p5']);
      expect(attempts).toBe(6); // p3 twice, everything else once
      expect(outbox.stats()).toMatchObject({ queued: 0, sent: 5 });
      ac.abort();
      await second;
    });

    it('discard() removes a message the broker keeps refusing, so the queue moves on', async () => {
      const { outbox } = await open();
      for (let i = 1; i <= 3; i++) outbox.enqueue(msg('event', i));
      const refusing: Send = (m) => (m.payload === 'e1' ? Promise.reject(new Error('PUBACK reason 0x99')) : Promise.resolve());
      const first = await outbox.deliver(refusing);
      expect(first).toMatchObject({ stopped: 'failed', id: 1 });
      expect(outbox.discard(1)).toBe(true);
      expect(outbox.discard(1)).toBe(false);
      expect(outbox.stats().dropped.event).toBe(1);
      expect(queuedPayloads(outbox)).toEqual(['e2', 'e3']);
    });

    it('with a window, removes strictly in order even when acks come out of order', async () => {
      const { outbox } = await open({ window: 3 });
      const { send, pending } = manualSend();
      for (let i = 1; i <= 5; i++) outbox.enqueue(msg('prediction', i));
      const ac = new AbortController();
      const done = outbox.deliver(send, { signal: ac.signal });
      await tick();
      expect(pending.map((p) => p.msg.payload)).toEqual(['p1', 'p2', 'p3']); // the window
      pending[1]?.ok();
      pending[2]?.ok();
      await tick();
      // p2 and p3 are acked but wait behind p1, and still count against the window.
      expect(outbox.stats()).toMatchObject({ queued: 5, sent: 0 });
      expect(pending).toHaveLength(3);
      pending[0]?.ok();
      await tick();
      expect(outbox.stats()).toMatchObject({ queued: 2, sent: 3 });
      expect(pending.map((p) => p.msg.payload)).toEqual(['p1', 'p2', 'p3', 'p4', 'p5']);
      ac.abort();
      await done;
    });

    it('with a window, a failed send is resent once and the acked ones after it are not resent', async () => {
      const { outbox, logs } = await open({ window: 4 });
      const { send, pending } = manualSend();
      for (let i = 1; i <= 6; i++) outbox.enqueue(msg('prediction', i));
      const done = outbox.deliver(send);
      await tick();
      pending[0]?.ok();
      pending[1]?.fail();
      pending[2]?.ok();
      await tick();
      // Stopped issuing; waits for p4 before returning.
      expect(pending).toHaveLength(4);
      pending[3]?.ok();
      expect(await done).toMatchObject({ stopped: 'failed', id: 2 });
      expect(queuedPayloads(outbox)).toEqual(['p2', 'p5', 'p6']);
      expect(logs.some((l) => l.delivered_out_of_order === 2)).toBe(true);
      const ac = new AbortController();
      const again = outbox.deliver(send, { signal: ac.signal });
      await tick();
      expect(pending.slice(4).map((p) => p.msg.payload)).toEqual(['p2', 'p5', 'p6']);
      for (const p of pending.slice(4)) p.ok();
      await tick();
      expect(outbox.stats()).toMatchObject({ queued: 0, sent: 6 });
      ac.abort();
      await again;
    });

    it('a second deliver() supersedes the first and waits for its sends to settle (no duplicates)', async () => {
      const { outbox } = await open({ window: 2 });
      const a = manualSend();
      const b = manualSend();
      for (let i = 1; i <= 4; i++) outbox.enqueue(msg('prediction', i));
      const first = outbox.deliver(a.send);
      await tick();
      const ac = new AbortController();
      const second = outbox.deliver(b.send, { signal: ac.signal });
      expect(await first).toEqual({ stopped: 'superseded' });
      await tick();
      expect(b.pending).toHaveLength(0); // p1, p2 still in flight through `a`
      a.pending[0]?.ok();
      a.pending[1]?.ok(); // e.g. MQTT.js replayed them after a reconnect
      await tick();
      expect(b.pending.map((p) => p.msg.payload)).toEqual(['p3', 'p4']);
      for (const p of b.pending) p.ok();
      await tick();
      expect(outbox.stats()).toMatchObject({ queued: 0, sent: 4 });
      ac.abort();
      await second;
    });

    it('stop() ends delivery and is idempotent; enqueue after stop throws', async () => {
      const { outbox } = await open();
      const done = outbox.deliver(() => Promise.resolve());
      await Promise.all([outbox.stop(), outbox.stop()]);
      await outbox.stop();
      expect(await done).toEqual({ stopped: 'closed' });
      expect(() => outbox.enqueue(msg('prediction', 1))).toThrow(/not running/);
    });

    it(`flush() says whether what was enqueued is on disk: ${traits.disk === 'ok'}`, async () => {
      const { outbox } = await open();
      outbox.enqueue(msg('event', 1));
      expect(await outbox.flush()).toBe(traits.disk === 'ok');
      expect(outbox.stats().disk_bytes > 0).toBe(traits.disk === 'ok');
    });

    if (traits.reopen === 'restored') {
      it('a reopen restores exactly the unacknowledged messages, in order, with ids continuing', async () => {
        const a = await open({ window: 4 });
        for (let i = 1; i <= 10; i++) a.outbox.enqueue(msg('prediction', i));
        await ack(a.outbox, 4);
        a.outbox.enqueue(msg('status', 'old', 'cam/status'));
        a.outbox.enqueue(msg('status', 'new', 'cam/status')); // supersedes 'old': not restored
        a.outbox.discard(6); // dropped: not restored
        const before = a.outbox.messages();
        expect(before.map((m) => m.id)).toEqual([5, 7, 8, 9, 10, 12]);
        await a.outbox.stop(); // no flush(): stop() writes the store out

        const b = await open({ window: 4 });
        expect(b.outbox.messages()).toEqual(before);
        expect(b.logs.find((l) => l.msg.includes('restored'))?.queued).toBe(6);
        expect(b.outbox.enqueue(msg('event', 'x')).id).toBe(13);
        await b.outbox.stop();

        // Everything acknowledged: ids still go on from where they were, never reused.
        const c = await open({ window: 4 });
        await ack(c.outbox, 7);
        expect(c.outbox.messages()).toEqual([]);
        await c.outbox.stop();
        const d = await open();
        expect(d.outbox.messages()).toEqual([]);
        expect(d.outbox.enqueue(msg('event', 'y')).id).toBe(14);
      });
    } else {
      it('a reopen starts empty: the queue lived in memory only', async () => {
        const a = await open();
        for (let i = 1; i <= 3; i++) a.outbox.enqueue(msg('prediction', i));
        await a.outbox.stop();
        const b = await open();
        expect(b.outbox.messages()).toEqual([]);
        expect(b.outbox.stats()).toMatchObject({ queued: 0, disk: traits.disk });
        expect(b.logs.some((l) => l.msg.includes('restored'))).toBe(false);
      });
    }
  });
}
