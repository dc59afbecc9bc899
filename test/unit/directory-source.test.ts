import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import sharp from 'sharp';
import { DirectorySource } from '../../src/camera/directory-source.js';
import type { Frame, FrameSink } from '../../src/camera/frame.js';
import type { DirectorySourceConfig } from '../../src/config/schema.js';
import { createSystemClock } from '../../src/ops/clock.js';

/**
 * An in-memory sink. With `holdUntilTaken`, it behaves like the pipeline's single slot: a pushed
 * frame stays "in the slot" until the test calls take(), and whenIdle() waits for that.
 */
class RecordingSink implements FrameSink {
  frames: Frame[] = [];
  errors: Error[] = [];
  ended = 0;
  private slotFull = false;
  private idleWaiters: (() => void)[] = [];
  private listeners: (() => void)[] = [];

  constructor(private readonly holdUntilTaken = false) {}

  push(frame: Frame): void {
    this.frames.push(frame);
    if (this.holdUntilTaken) this.slotFull = true;
    this.notify();
  }
  whenIdle(): Promise<void> {
    if (!this.slotFull) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
  captureError(err: Error): void {
    this.errors.push(err);
    this.notify();
  }
  end(): void {
    this.ended += 1;
    this.notify();
  }
  restarting(): void {
    throw new Error('a directory source never restarts');
  }
  take(): void {
    this.slotFull = false;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
  /** Resolves once `cond` holds, re-checked on every sink call; fails after `ms`. */
  async until(cond: () => boolean, ms = 5_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
      await new Promise<void>((resolve) => {
        this.listeners.push(resolve);
        setTimeout(resolve, 20);
      });
    }
  }
  private notify(): void {
    for (const resolve of this.listeners.splice(0)) resolve();
  }
}

const logger = pino({ level: 'silent' });
const clock = createSystemClock();

function config(path: string, over: Partial<DirectorySourceConfig> = {}): DirectorySourceConfig {
  return { type: 'directory', path, fps: 100, loop: false, realtime: false, ...over };
}

async function png(path: string, rgb: [number, number, number]): Promise<void> {
  const [r, g, b] = rgb;
  await sharp({ create: { width: 8, height: 6, channels: 3, background: { r, g, b } } }).png().toFile(path);
}

let dir: string;
const sources: DirectorySource[] = [];

function makeSource(sink: FrameSink, over: Partial<DirectorySourceConfig> = {}, path = dir): DirectorySource {
  const source = new DirectorySource({ camera: 'cam1', config: config(path, over), logger, clock, sink });
  sources.push(source);
  return source;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dirsrc-'));
  await png(join(dir, 'b.png'), [0, 255, 0]);
  await png(join(dir, 'a.png'), [255, 0, 0]);
  await sharp({ create: { width: 8, height: 6, channels: 3, background: '#0000ff' } }).jpeg().toFile(join(dir, 'C.JPG'));
  await writeFile(join(dir, 'd-empty.jpg'), Buffer.alloc(0));
  await writeFile(join(dir, 'notes.txt'), 'not an image');
  await png(join(dir, '.hidden.png'), [9, 9, 9]);
  await mkdir(join(dir, 'sub.jpg'));
  await png(join(dir, 'sub.jpg', 'inner.png'), [9, 9, 9]);
});

afterEach(async () => {
  await Promise.all(sources.splice(0).map((s) => s.stop()));
  await rm(dir, { recursive: true, force: true });
});

describe('DirectorySource', () => {
  it('replays image files in code-unit name order, then ends (loop: false)', async () => {
    const sink = new RecordingSink();
    await makeSource(sink).start();
    await sink.until(() => sink.ended > 0);

    // 'C.JPG' sorts before lower case: code units, not locale. The 0-byte file is a frame too.
    expect(sink.frames.map((f) => f.source)).toEqual(['C.JPG', 'a.png', 'b.png', 'd-empty.jpg']);
    expect(sink.frames.map((f) => f.seq)).toEqual([1, 2, 3, 4]);
    expect(sink.frames.every((f) => f.camera === 'cam1')).toBe(true);
    expect(sink.frames[3]!.data.length).toBe(0);
    expect((await sharp(sink.frames[1]!.data).stats()).channels[0]!.mean).toBe(255);
    expect(sink.errors).toEqual([]);
    expect(sink.ended).toBe(1);
  });

  it('stamps capturedAt with the wall clock and paces at fps', async () => {
    const sink = new RecordingSink();
    const before = Date.now();
    await makeSource(sink, { fps: 20 }).start();
    await sink.until(() => sink.ended > 0);
    const times = sink.frames.map((f) => f.capturedAt);
    expect(times[0]!).toBeGreaterThanOrEqual(before);
    // 4 frames at 20 fps: at least 3 intervals of 50 ms (timer slack: allow a few ms early).
    expect(times[3]! - times[0]!).toBeGreaterThanOrEqual(145);
  });

  it('loops, re-listing the directory so new files are picked up', async () => {
    const sink = new RecordingSink();
    await makeSource(sink, { loop: true }).start();
    await sink.until(() => sink.frames.length >= 4);
    await png(join(dir, 'e-new.png'), [1, 2, 3]);
    await sink.until(() => sink.frames.some((f) => f.source === 'e-new.png'));
    await sink.until(() => sink.frames.length >= 12);

    const names = sink.frames.map((f) => f.source);
    expect(names.slice(0, 4)).toEqual(['C.JPG', 'a.png', 'b.png', 'd-empty.jpg']);
    expect(names.lastIndexOf('e-new.png')).toBeGreaterThan(4);
    expect(sink.frames.map((f) => f.seq)).toEqual(sink.frames.map((_, i) => i + 1));
    expect(sink.ended).toBe(0);
  });

  it('realtime: false pushes nothing until the previous frame is taken', async () => {
    const sink = new RecordingSink(true);
    await makeSource(sink, { fps: 100 }).start();
    await sink.until(() => sink.frames.length === 1);
    await new Promise((r) => setTimeout(r, 200)); // 20 intervals at 100 fps
    expect(sink.frames).toHaveLength(1);

    sink.take();
    await sink.until(() => sink.frames.length === 2);
    await new Promise((r) => setTimeout(r, 100));
    expect(sink.frames).toHaveLength(2);
    expect(sink.frames[1]!.source).toBe('a.png');
  });

  it('realtime: true pushes at fps even when nothing is taken', async () => {
    const sink = new RecordingSink(true);
    await makeSource(sink, { realtime: true, fps: 100 }).start();
    await sink.until(() => sink.ended > 0);
    expect(sink.frames).toHaveLength(4);
  });

  it('reports an unreadable file naming its path and carries on', async () => {
    await symlink(join(dir, 'missing-target.png'), join(dir, 'bb-broken.png'));
    const sink = new RecordingSink();
    await makeSource(sink).start();
    await sink.until(() => sink.ended > 0);
    expect(sink.errors).toHaveLength(1);
    expect(sink.errors[0]!.message).toContain(join(dir, 'bb-broken.png'));
    expect(sink.frames.map((f) => f.source)).toEqual(['C.JPG', 'a.png', 'b.png', 'd-empty.jpg']);
  });

  it('reports a missing directory by path, and recovers when it appears', async () => {
    const later = join(dir, 'mount-later');
    const sink = new RecordingSink();
    await makeSource(sink, {}, later).start();
    await sink.until(() => sink.errors.length >= 1);
    expect(sink.errors[0]!.message).toContain(later);
    expect(sink.errors[0]!.message).toMatch(/does not exist/);
    expect(sink.frames).toHaveLength(0);

    await mkdir(later);
    await sink.until(() => sink.errors.length >= 2); // empty: reported too, naming the path
    expect(sink.errors[1]!.message).toContain(later);
    expect(sink.errors[1]!.message).toMatch(/no image files/);

    await png(join(later, 'x.png'), [5, 5, 5]);
    await sink.until(() => sink.ended > 0, 10_000); // backoff: 1 s, 2 s, 4 s
    expect(sink.frames.map((f) => [f.source, f.seq])).toEqual([['x.png', 1]]);
  });

  it('stop() ends promptly, during a backoff and during a whenIdle wait', async () => {
    const waiting = new RecordingSink();
    const missing = makeSource(waiting, {}, join(dir, 'nope'));
    await missing.start();
    await waiting.until(() => waiting.errors.length >= 1);

    const held = new RecordingSink(true);
    const blocked = makeSource(held, { loop: true });
    await blocked.start();
    await held.until(() => held.frames.length === 1);

    const t0 = performance.now();
    await Promise.all([missing.stop(), blocked.stop()]);
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(held.ended).toBe(0);
    expect(held.frames).toHaveLength(1);
  });
});
