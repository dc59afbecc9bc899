import { describe, expect, it } from 'vitest';
import * as fsp from 'node:fs/promises';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { FileStore, Outbox, type FileOps, type FileStoreConfig, type OutboxConfig } from '../../src/mqtt/outbox/index.js';
import type { OutboxMessage } from '../../src/mqtt/outbox/index.js';
import { parseLog, type LogRecord } from '../../src/mqtt/outbox/records.js';
import { createSystemClock } from '../../src/core/clock.js';
import type { Logger } from '../../src/core/logger.js';
import { tempDir } from '../helpers/fixtures.js';
import { ack, outboxStoreContract } from '../contracts/outbox-store.contract.js';

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

function capture(): { logger: Logger; logs: LogLine[] } {
  const logs: LogLine[] = [];
  return { logs, logger: pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s) as LogLine) }) };
}

const clock = createSystemClock();

function diskConfig(path: string, extra: Partial<FileStoreConfig & { max_bytes: number }> = {}): OutboxConfig {
  return { max_messages: 10_000, window: 4, disk: { path, max_bytes: 10 * 1024 * 1024, fsync: 'always', ...extra } };
}

async function openOutbox(config: OutboxConfig, fs?: FileOps): Promise<{ outbox: Outbox; logs: LogLine[] }> {
  const { logger, logs } = capture();
  const outbox = new Outbox({ logger, clock, config, ...(fs ? { fs } : {}) });
  await outbox.start();
  return { outbox, logs };
}

function prediction(n: number): { topic: string; payload: string; qos: 1; retain: false; kind: 'prediction' } {
  // Quotes, a newline and non-ASCII: what must survive the JSON-lines encoding.
  return { topic: 'ec/dev/cam/prediction', payload: JSON.stringify({ seq: n, label: 'café "x"\n' }), qos: 1, retain: false, kind: 'prediction' };
}

function records(path: string): LogRecord[] {
  return parseLog(readFileSync(path)).records;
}

// Ordering, the bound, acks, windows, stop() and what a reopen restores: the same promises as
// the memory store, on real files; 'interval' with a long interval shows that stop() writes out.
for (const fsync of ['always', 'interval'] as const) {
  outboxStoreContract(
    `file store, fsync ${fsync}`,
    () => {
      const path = join(tempDir(), 'outbox.log');
      return { open: ({ logger, config }) => new Outbox({ logger, clock, config: { ...config, disk: { path, max_bytes: 10 * 1024 * 1024, fsync, fsync_interval_ms: 60_000 } } }) };
    },
    { reopen: 'restored', disk: 'ok' },
  );
}

describe('FileStore', () => {
  it('recovers from a log cut at every byte offset: complete records kept, a torn last one skipped', async () => {
    const dir = tempDir();
    const path = join(dir, 'outbox.log');
    const a = await openOutbox(diskConfig(path, { compact_min_bytes: 1e9 }));
    for (let i = 1; i <= 4; i++) {
      a.outbox.enqueue(prediction(i));
      await a.outbox.flush(); // one record per batch: more boundaries to cut at
    }
    await ack(a.outbox, 2);
    await a.outbox.flush();
    a.outbox.enqueue(prediction(5));
    await a.outbox.stop();
    const full = readFileSync(path);
    // The record boundaries, and the live ids after each prefix of records.
    const ends: number[] = [];
    for (let i = full.indexOf(0x0a); i >= 0; i = full.indexOf(0x0a, i + 1)) ends.push(i + 1);
    const liveAfter = (recs: LogRecord[]): number[] => {
      const live = new Set<number>();
      for (const r of recs) if (r.t === 'add') live.add(r.id);
      else if (r.t === 'del') for (const id of r.ids) live.delete(id);
      return [...live];
    };
    const all = parseLog(full).records;
    expect(all.map((r) => r.t)).toEqual(['meta', 'add', 'add', 'add', 'add', 'del', 'add']);
    let torn = 0;
    for (let cut = 0; cut <= full.length; cut++) {
      const p = join(dir, `cut-${cut}.log`);
      writeFileSync(p, full.subarray(0, cut));
      const { logger, logs } = capture();
      const store = new FileStore({ logger, clock, config: { path: p, fsync: 'always' } });
      const got = await store.start();
      const complete = ends.filter((e) => e <= cut).length;
      expect(got.messages.map((m) => m.id), `cut at ${cut}`).toEqual(liveAfter(all.slice(0, complete)));
      const partial = cut - (ends[complete - 1] ?? 0);
      expect(got.tornBytes).toBe(partial);
      expect(got.corrupt).toBe(0);
      if (partial > 0) {
        torn++;
        expect(logs.some((l) => l.level === 40 && l.msg.includes('incomplete last record'))).toBe(true);
      }
      // Rewritten clean: nothing torn left, and appends after it are readable.
      store.append({ ...prediction(99), id: 1000 });
      await store.stop();
      const again = parseLog(readFileSync(p));
      expect(again.tornBytes + again.corrupt.length).toBe(0);
      expect(again.records.at(-1)).toMatchObject({ t: 'add', id: 1000 });
    }
    expect(torn).toBe(full.length + 1 - ends.length - 1);
  });

  it('reports a corrupted record in the middle and keeps the others', async () => {
    const path = join(tempDir(), 'outbox.log');
    const a = await openOutbox(diskConfig(path));
    for (let i = 1; i <= 3; i++) {
      a.outbox.enqueue(prediction(i));
      await a.outbox.flush();
    }
    await a.outbox.stop();
    const buf = readFileSync(path);
    const second = buf.indexOf(0x0a, buf.indexOf(0x0a) + 1) + 1; // the second add record
    buf[second + 30] = (buf[second + 30] ?? 0) ^ 0x01; // one flipped bit: still valid JSON text
    writeFileSync(path, buf);
    const b = await openOutbox(diskConfig(path));
    expect(b.outbox.messages().map((m) => m.id)).toEqual([1, 3]);
    const error = b.logs.find((l) => l.level === 50 && l.msg.includes('corrupted'));
    expect(error).toMatchObject({ records: 1, offsets: [second] });
    await b.outbox.stop();
  });

  it('compaction keeps exactly the unacked messages, in order', async () => {
    const path = join(tempDir(), 'outbox.log');
    const config = diskConfig(path, { compact_min_bytes: 4096 });
    const a = await openOutbox(config);
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 20; i++) a.outbox.enqueue(prediction(round * 20 + i));
      await a.outbox.flush();
      await ack(a.outbox, 15);
      await a.outbox.flush();
    }
    const expected = a.outbox.messages();
    expect(expected).toHaveLength(100);
    await a.outbox.stop();
    // The log was rewritten along the way: it starts with a meta record and lacks most of the
    // 400 adds (acked ones are gone), and it is kept well under everything ever appended.
    const recs = records(path);
    expect(recs[0]?.t).toBe('meta');
    expect(recs.filter((r) => r.t === 'add').length).toBeLessThan(200);
    const b = await openOutbox(config);
    expect(b.outbox.messages()).toEqual(expected);
    const clean = records(path);
    expect(clean[0]).toMatchObject({ t: 'meta', next: 401 });
    expect(clean.slice(1).map((r) => (r as OutboxMessage).id)).toEqual(expected.map((m) => m.id));
    await b.outbox.stop();
  });

  it('a compaction killed before its rename leaves the old log, and the next start removes the stale tmp', async () => {
    const path = join(tempDir(), 'outbox.log');
    let armed = false;
    let release: ((err: Error) => void) | undefined;
    const stuck: FileOps = {
      ...realFs(),
      // Once armed, the process "dies" here: the tmp is written and synced, the rename never happens.
      rename: (from, to) => (armed ? new Promise<void>((_, reject) => (release = reject)) : fsp.rename(from, to)),
    };
    const config = diskConfig(path, { compact_min_bytes: 1024 });
    const b = await openOutbox(config, stuck);
    for (let i = 1; i <= 30; i++) b.outbox.enqueue(prediction(i));
    await b.outbox.flush();
    armed = true;
    await ack(b.outbox, 25);
    void b.outbox.flush(); // the del batch, then a compaction that hangs at the rename
    for (let i = 0; i < 100 && !release; i++) await new Promise((r) => setTimeout(r, 5));
    expect(release).toBeDefined();
    expect(existsSync(`${path}.tmp`)).toBe(true);

    const c = await openOutbox(config);
    expect(existsSync(`${path}.tmp`)).toBe(false);
    expect(c.outbox.messages().map((m) => m.id)).toEqual([26, 27, 28, 29, 30]);
    await c.outbox.stop();
    release?.(new Error('killed'));
  });

  it("fsync 'interval': a message acked within the interval never reaches the disk", async () => {
    const path = join(tempDir(), 'outbox.log');
    const a = await openOutbox(diskConfig(path, { fsync: 'interval', fsync_interval_ms: 200 }));
    const size = a.outbox.stats().disk_bytes; // the meta record
    a.outbox.enqueue(prediction(1));
    await ack(a.outbox, 1);
    a.outbox.enqueue(prediction(2));
    await new Promise((r) => setTimeout(r, 400));
    expect(records(path).map((r) => r.t)).toEqual(['meta', 'add']);
    expect(a.outbox.stats().disk_bytes).toBeGreaterThan(size);
    await a.outbox.stop();
  });

  it('ENOSPC: the error is logged, the outbox goes on in memory only, the next start skips the torn record', async () => {
    const path = join(tempDir(), 'outbox.log');
    let budget = Infinity;
    const fullDisk: FileOps = {
      ...realFs(),
      async open(p, flags) {
        const h = await fsp.open(p, flags);
        return {
          async write(buf, off, len) {
            if (budget <= 0) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
            const n = Math.min(len, budget);
            budget -= n;
            return h.write(buf, off, n); // a short write, then ENOSPC on the rest
          },
          datasync: () => h.datasync(),
          sync: () => h.sync(),
          close: () => h.close(),
        };
      },
    };
    const a = await openOutbox(diskConfig(path), fullDisk);
    a.outbox.enqueue(prediction(1));
    expect(await a.outbox.flush()).toBe(true);
    budget = 40;
    a.outbox.enqueue(prediction(2));
    expect(await a.outbox.flush()).toBe(false);
    expect(a.outbox.stats().disk).toBe('failed');
    const error = a.logs.find((l) => l.level === 50);
    expect(error).toMatchObject({ code: 'ENOSPC', msg: expect.stringContaining('memory only') as unknown });
    a.outbox.enqueue(prediction(3));
    const delivered: number[] = [];
    const ac = new AbortController();
    const loop = a.outbox.deliver((m) => Promise.resolve(void delivered.push(m.id)), { signal: ac.signal });
    await new Promise((r) => setImmediate(r));
    expect(delivered).toEqual([1, 2, 3]);
    ac.abort();
    await loop;
    await a.outbox.stop();
    // The log stopped at message 1 plus 40 bytes of message 2.
    const b = await openOutbox(diskConfig(path));
    expect(b.outbox.messages().map((m) => m.id)).toEqual([1]);
    expect(b.logs.some((l) => l.msg.includes('incomplete last record') && l.bytes === 40)).toBe(true);
    await b.outbox.stop();
  });

  it('EACCES at start: logged, memory-only, start() does not throw', async () => {
    const dir = tempDir();
    const path = join(dir, 'outbox.log');
    const denied: FileOps = {
      ...realFs(),
      readFile: () => Promise.reject(Object.assign(new Error(`EACCES: permission denied, open '${path}'`), { code: 'EACCES' })),
    };
    const a = await openOutbox(diskConfig(path), denied);
    expect(a.outbox.stats().disk).toBe('failed');
    expect(a.logs.find((l) => l.level === 50)).toMatchObject({ code: 'EACCES' });
    expect(a.outbox.enqueue(prediction(1)).id).toBe(1);
    expect(await a.outbox.flush()).toBe(false);
    await a.outbox.stop();
    expect(existsSync(path)).toBe(false);
  });

  it('a path that cannot be a directory fails the same way (a real error, not injected)', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'file'), '');
    const a = await openOutbox(diskConfig(join(dir, 'file', 'outbox.log')));
    expect(a.outbox.stats().disk).toBe('failed');
    expect(a.logs.find((l) => l.level === 50)).toMatchObject({ code: expect.stringMatching(/ENOTDIR|EEXIST/) as unknown });
    await a.outbox.stop();
  });

  it('bounds the live records by max_bytes, dropping the oldest predictions', async () => {
    const path = join(tempDir(), 'outbox.log');
    const a = await openOutbox(diskConfig(path, { max_bytes: 2000 }));
    for (let i = 1; i <= 50; i++) a.outbox.enqueue(prediction(i));
    const kept = a.outbox.messages();
    expect(kept.length).toBeGreaterThan(5);
    expect(kept.length).toBeLessThan(50);
    expect(kept.at(-1)?.id).toBe(50);
    expect(a.outbox.stats().dropped.prediction).toBe(50 - kept.length);
    await a.outbox.stop();
    expect(readFileSync(path).length).toBeLessThan(2000 + 200);
  });
});

function realFs(): FileOps {
  return { open: fsp.open, readFile: fsp.readFile, rename: fsp.rename, unlink: fsp.unlink, mkdir: fsp.mkdir };
}
