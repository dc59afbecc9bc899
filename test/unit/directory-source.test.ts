import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, open, rename, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { resourceUsage } from 'node:process';
import { pino } from 'pino';
import sharp from 'sharp';
import { DirectorySource } from '../../src/camera/directory-source.js';
import type { Frame, FrameSink } from '../../src/camera/frame.js';
import { CameraHealth, monitoredSink } from '../../src/camera/camera-health.js';
import type { ReadFs } from '../../src/camera/safe-read.js';
import { FrameSlots } from '../../src/daemon/frame-slots.js';
import type { DirectorySourceConfig } from '../../src/config/schema.js';
import { createSystemClock, type Clock } from '../../src/core/clock.js';
import { cameraSourceContract, type SourceFactoryDeps } from '../contracts/camera-source.contract.js';

/**
 * An in-memory sink. With `holdUntilTaken`, it behaves like the pipeline's single slot: a pushed
 * frame stays "in the slot" until the test calls take(), and whenIdle() waits for that.
 */
class RecordingSink implements FrameSink {
  frames: Frame[] = [];
  errors: Error[] = [];
  skips: { file: string; reason: string }[] = [];
  stalls: Error[] = [];
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
  /** A directory source "restarts" only to say it makes no progress: a stall, as a stream's watchdog says it. */
  restarting(reason: 'stall' | 'exit' | 'error', err: Error): void {
    if (reason !== 'stall') throw new Error(`a directory source never restarts for ${reason}`);
    this.stalls.push(err);
    this.notify();
  }
  skipped(file: string, reason: string): void {
    this.skips.push({ file, reason });
    this.notify();
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
/** The system clock with sleeps 20 times shorter: the retry backoff of 1 s, 2 s, 4 s takes 50, 100, 200 ms. */
const fastSleeps: Clock = { ...clock, sleep: (ms, signal) => clock.sleep(ms / 20, signal) };

function config(path: string, over: Partial<DirectorySourceConfig> = {}): DirectorySourceConfig {
  return { type: 'directory', path, fps: 100, loop: false, realtime: false, max_file_bytes: 32 * 1024 * 1024, read_timeout_ms: 5_000, ...over };
}

async function png(path: string, rgb: [number, number, number]): Promise<void> {
  const [r, g, b] = rgb;
  await sharp({ create: { width: 8, height: 6, channels: 3, background: { r, g, b } } }).png().toFile(path);
}

let dir: string;
const sources: DirectorySource[] = [];

function makeSource(sink: FrameSink, over: Partial<DirectorySourceConfig> = {}, path = dir, sourceClock: Clock = clock): DirectorySource {
  const source = new DirectorySource({ camera: 'cam1', config: config(path, over), logger, clock: sourceClock, sink });
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

const contractDirs: string[] = [];
afterAll(async () => {
  await Promise.all(contractDirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/** A directory of `files` small images of its own (the files above include a 0-byte one). */
async function contractSource({ camera, sink }: SourceFactoryDeps, over: Partial<DirectorySourceConfig>, files = 3): Promise<DirectorySource> {
  const path = await mkdtemp(join(tmpdir(), 'dirsrc-contract-'));
  contractDirs.push(path);
  for (let i = 0; i < files; i++) await png(join(path, `${i}.png`), [i * 80, 0, 0]);
  return new DirectorySource({ camera, config: config(path, over), logger, clock, sink });
}

cameraSourceContract('directory', {
  make: (deps) => contractSource(deps, { loop: true }),
  failing: (deps) => contractSource(deps, {}, 0), // an empty directory: "no image files", retried with backoff
  finite: (deps) => contractSource(deps, { loop: false }),
  program: 'in-process',
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
    await makeSource(sink, {}, later, fastSleeps).start();
    await sink.until(() => sink.errors.length >= 1);
    expect(sink.errors[0]!.message).toContain(later);
    expect(sink.errors[0]!.message).toMatch(/does not exist/);
    expect(sink.frames).toHaveLength(0);

    await mkdir(later);
    // Empty: reported too, naming the path (after as many "does not exist" as retries came first).
    const empty = () => sink.errors.findIndex((e) => /no image files/.test(e.message));
    await sink.until(() => empty() >= 0);
    expect(sink.errors.slice(0, empty()).every((e) => /does not exist/.test(e.message))).toBe(true);
    expect(sink.errors[empty()]!.message).toContain(later);

    // Written whole, then moved in: a retry (every 100-200 ms here) never sees half a file.
    await png(join(dir, 'x.part'), [5, 5, 5]);
    await rename(join(dir, 'x.part'), join(later, 'x.png'));
    await sink.until(() => sink.ended > 0, 10_000); // backoff: 1 s, 2 s, 4 s (here 20 times shorter)
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

describe('DirectorySource with hostile files', () => {
  const MIB = 1024 * 1024;
  let hostile: string;

  async function jpeg(path: string): Promise<void> {
    await sharp({ create: { width: 8, height: 6, channels: 3, background: '#808080' } }).jpeg().toFile(path);
  }

  beforeEach(async () => {
    hostile = await mkdtemp(join(tmpdir(), 'dirsrc-hostile-'));
  });

  afterEach(async () => {
    await rm(hostile, { recursive: true, force: true });
  });

  /** The files the issue reproduced with, each followed by a good JPEG. */
  async function writeHostileFiles(at: string): Promise<void> {
    await jpeg(join(at, 'a-good.jpg'));
    await symlink('/dev/zero', join(at, 'b-zero.jpg'));
    await jpeg(join(at, 'c-good.jpg'));
    execFileSync('mkfifo', [join(at, 'd-fifo.jpg')]);
    await jpeg(join(at, 'e-good.jpg'));
    await symlink(join(at, 'd-fifo.jpg'), join(at, 'f-fifo-link.jpg'));
    await jpeg(join(at, 'g-good.jpg'));
    // Sparse: 1.5 GB of size, no disk.
    await writeFile(join(at, 'h-sparse.jpg'), '');
    await truncate(join(at, 'h-sparse.jpg'), 1536 * MIB);
    await jpeg(join(at, 'i-good.jpg'));
  }

  it('skips a /dev/zero symlink, a FIFO, a FIFO symlink and a 1.5 GB sparse file, counting each with its reason; the good frames arrive', async () => {
    await writeHostileFiles(hostile);
    const sink = new RecordingSink();
    const peakBefore = resourceUsage().maxRSS; // KiB, the process's high-water mark
    const t0 = performance.now();
    await makeSource(sink, {}, hostile).start();
    await sink.until(() => sink.ended > 0);

    expect(sink.frames.map((f) => f.source)).toEqual(['a-good.jpg', 'c-good.jpg', 'e-good.jpg', 'g-good.jpg', 'i-good.jpg']);
    expect(sink.skips).toEqual([
      { file: 'b-zero.jpg', reason: 'a character device, not a regular file' },
      { file: 'd-fifo.jpg', reason: 'a FIFO, not a regular file' },
      { file: 'f-fifo-link.jpg', reason: 'a FIFO, not a regular file' },
      { file: 'h-sparse.jpg', reason: '1536.0 MiB, more than max_file_bytes (32.0 MiB)' },
    ]);
    // Skipped files are not capture errors: frames came, the camera made progress.
    expect(sink.errors).toEqual([]);
    expect(sink.stalls).toEqual([]);
    expect(performance.now() - t0).toBeLessThan(3_000);
    // The old code read the sparse file whole (+1.5 GB) and /dev/zero until memory ran out.
    const grewMiB = (resourceUsage().maxRSS - peakBefore) / 1024;
    expect(grewMiB).toBeLessThan(200);
  });

  it('a FIFO alone does not hang the source: it is skipped at once and stop() returns promptly', async () => {
    execFileSync('mkfifo', [join(hostile, 'x.jpg')]);
    await symlink(join(hostile, 'x.jpg'), join(hostile, 'y.jpg'));
    const sink = new RecordingSink();
    const source = makeSource(sink, { loop: true }, hostile);
    await source.start();
    await sink.until(() => sink.skips.length >= 2, 2_000);
    const t0 = performance.now();
    await source.stop();
    expect(performance.now() - t0).toBeLessThan(500);
  });

  it('a file that claims size 0 and keeps giving data (procfs) is cut at max_file_bytes', async () => {
    await symlink('/proc/self/maps', join(hostile, 'maps.jpg'));
    await jpeg(join(hostile, 'z.jpg'));
    const sink = new RecordingSink();
    await makeSource(sink, { max_file_bytes: 1024 }, hostile).start();
    await sink.until(() => sink.ended > 0);
    expect(sink.skips).toEqual([{ file: 'maps.jpg', reason: 'grew past max_file_bytes (1024 bytes) while being read' }]);
    expect(sink.frames.map((f) => f.source)).toEqual(['z.jpg']);
  });

  it('a directory of only bad files makes no progress: the camera goes offline with the reason and counts a stall', async () => {
    await symlink('/dev/zero', join(hostile, 'zero.jpg'));
    execFileSync('mkfifo', [join(hostile, 'fifo.jpg')]);
    const slots = new FrameSlots({ onFrame: () => undefined, onDrop: () => undefined, onCaptureError: () => undefined, onEnd: () => undefined });
    const health = new CameraHealth({ clock, onChange: () => undefined });
    const recording = new RecordingSink();
    const monitored = monitoredSink(slots.sink('cam1'), health);
    // Both: the real health and counters, and a record of the calls to wait on.
    const sink: FrameSink = {
      ...monitored,
      captureError: (err) => (monitored.captureError(err), recording.captureError(err)),
      restarting: (reason, err) => (monitored.restarting(reason, err), recording.restarting(reason, err)),
      skipped: (file, reason) => (monitored.skipped?.(file, reason), recording.skipped(file, reason)),
    };
    await makeSource(sink, { loop: true }, hostile).start();
    await recording.until(() => recording.stalls.length >= 1);

    const why = recording.stalls[0]!.message;
    expect(why).toBe(
      `directory source ${hostile} makes no progress: no frame from the 2 image file(s) of the last pass ` +
        '(2 skipped or unreadable, e.g. fifo.jpg: a FIFO, not a regular file)',
    );
    const snap = health.snapshot();
    expect(snap).toMatchObject({ state: 'offline', lastError: why, stallsLastHour: 1, stalledSince: expect.any(Number) });
    expect(slots.counters('cam1')).toMatchObject({ skippedFiles: 2, captured: 0, captureErrors: 0 });
  });

  it('a read that hangs is abandoned at read_timeout_ms, no other read starts until it returns, and stop() stays prompt', async () => {
    await jpeg(join(hostile, 'a.jpg'));
    await jpeg(join(hostile, 'b-hangs.jpg'));
    await jpeg(join(hostile, 'c.jpg'));
    // An NFS server that stops answering: open() of one file returns only when released.
    let release: (() => void) | undefined;
    const opened: string[] = [];
    const fs: ReadFs = {
      stat: (path) => stat(path),
      open: async (path, flags) => {
        opened.push(basename(path));
        if (path.endsWith('b-hangs.jpg')) await new Promise<void>((resolve) => (release = resolve));
        return open(path, flags);
      },
    };
    const sink = new RecordingSink();
    const source = new DirectorySource({ camera: 'cam1', config: config(hostile, { read_timeout_ms: 200 }), logger, clock, sink, fs });
    sources.push(source);
    await source.start();

    await sink.until(() => sink.stalls.length >= 1);
    expect(sink.skips).toEqual([{ file: 'b-hangs.jpg', reason: 'not read within 200 ms (read_timeout_ms)' }]);
    expect(sink.stalls[0]!.message).toMatch(/makes no progress: a read gave up after read_timeout_ms \(200 ms\) and its fs call has still not returned/);
    await new Promise((r) => setTimeout(r, 300));
    expect(opened).toEqual(['a.jpg', 'b-hangs.jpg']); // c.jpg waits: one hung thread at most

    release!();
    await sink.until(() => sink.ended > 0);
    expect(sink.frames.map((f) => f.source)).toEqual(['a.jpg', 'c.jpg']);
  });

  it('stop() returns promptly while a read hangs, and while it waits for a hung one', async () => {
    await jpeg(join(hostile, 'a.jpg'));
    await jpeg(join(hostile, 'b.jpg'));
    const never: ReadFs = { stat: () => new Promise(() => undefined), open: () => new Promise(() => undefined) };
    for (const timeout of [60_000, 100]) {
      const sink = new RecordingSink();
      const source = new DirectorySource({ camera: 'cam1', config: config(hostile, { read_timeout_ms: timeout, loop: true }), logger, clock, sink, fs: never });
      await source.start();
      await new Promise((r) => setTimeout(r, 300)); // inside the read, or (100 ms) past it and waiting
      if (timeout === 100) expect(sink.stalls.length).toBeGreaterThanOrEqual(1);
      const t0 = performance.now();
      await source.stop();
      expect(performance.now() - t0).toBeLessThan(200);
    }
  });
});
