import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import sharp from 'sharp';
import type { Frame, FrameSink } from '../../src/camera/frame.js';
import { WebcamSource } from '../../src/camera/webcam-source.js';
import type { WebcamSourceConfig } from '../../src/config/schema.js';
import { createSystemClock } from '../../src/core/clock.js';
import { cameraSourceContract, type SourceFactoryDeps } from '../contracts/camera-source.contract.js';

class RecordingSink implements FrameSink {
  frames: Frame[] = [];
  errors: { err: Error; at: number; leftover: number[] }[] = [];
  constructor(private readonly onError?: () => number[]) {}
  push(frame: Frame): void {
    this.frames.push(frame);
  }
  whenIdle(): Promise<void> {
    return Promise.resolve();
  }
  captureError(err: Error): void {
    this.errors.push({ err, at: performance.now(), leftover: this.onError?.() ?? [] });
  }
  end(): void {
    throw new Error('a webcam never ends');
  }
  restarting(): void {
    throw new Error('the webcam source has no process to restart');
  }
}

/**
 * Pids of fswebcam processes started by this test: their argv holds the output file, which is
 * inside this test's tmpDir. (Other fswebcam processes on the machine are none of our business.)
 * Synchronous, so a sink callback can take the census at the moment an error is reported.
 */
function ourFswebcams(tmp: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv[0]?.endsWith('fswebcam') && argv.some((a) => a.startsWith(tmp))) pids.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}

function config(over: Partial<WebcamSourceConfig>): WebcamSourceConfig {
  return {
    type: 'webcam',
    device: 'TEST',
    width: 320,
    height: 240,
    fps: 10,
    quality: 80,
    skip: 0,
    timeout_ms: 10_000,
    ...over,
  };
}

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('WebcamSource with the real fswebcam', () => {
  let tmp: string;
  const sources: WebcamSource[] = [];

  function makeSource(sink: FrameSink, over: Partial<WebcamSourceConfig>): WebcamSource {
    const source = new WebcamSource({
      camera: 'cam1',
      config: config(over),
      logger: pino({ level: 'silent' }),
      clock: createSystemClock(),
      sink,
      tmpDir: join(tmp, 'shots'),
    });
    sources.push(source);
    return source;
  }

  beforeEach(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'webcam-src-'));
  });
  afterEach(async () => {
    await Promise.all(sources.splice(0).map((s) => s.stop()));
    await rm(tmp, { recursive: true, force: true });
  });

  const contractSource = ({ camera, sink }: SourceFactoryDeps, over: Partial<WebcamSourceConfig>): WebcamSource =>
    new WebcamSource({ camera, config: config(over), logger: pino({ level: 'silent' }), clock: createSystemClock(), sink, tmpDir: join(tmp, 'shots') });
  cameraSourceContract('webcam (fswebcam)', {
    make: (deps) => contractSource(deps, { width: 160, height: 120, fps: 10 }),
    failing: (deps) => contractSource(deps, { device: '/dev/video-nope' }),
    finite: 'never',
    program: { name: 'fswebcam' },
  });

  it('captures JPEG frames of the requested size from the TEST device', async () => {
    const sink = new RecordingSink();
    const source = makeSource(sink, { width: 352, height: 288, fps: 20 });
    await source.start();
    await waitFor(() => sink.frames.length >= 3, 15_000);
    await source.stop();

    expect(sink.errors.map((e) => e.err.message)).toEqual([]);
    for (const frame of sink.frames) {
      const meta = await sharp(frame.data).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', 352, 288]);
      expect(frame.source).toBe('TEST');
      expect(frame.camera).toBe('cam1');
    }
    expect(sink.frames.map((f) => f.seq)).toEqual(sink.frames.map((_, i) => i + 1));
    // Paced at 20 fps: shots start at least 50 ms apart.
    const times = sink.frames.map((f) => f.capturedAt);
    for (let i = 1; i < times.length; i += 1) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(45);
    // Temp files are removed, and nothing is left running.
    expect(await readdir(join(tmp, 'shots'))).toEqual([]);
    expect(ourFswebcams(tmp)).toEqual([]);
  });

  it('reports a missing device with a useful message and carries on', async () => {
    const sink = new RecordingSink();
    const source = makeSource(sink, { device: '/dev/video-nope' });
    await source.start();
    await waitFor(() => sink.errors.length >= 2, 10_000); // second attempt after the 1 s backoff
    await source.stop();

    expect(sink.frames).toEqual([]);
    const message = sink.errors[0]!.err.message;
    expect(message).toContain('/dev/video-nope');
    expect(message).toMatch(/No such file or directory/);
    expect(message).not.toContain('\u001b'); // colour codes stripped
    expect(sink.errors[1]!.at - sink.errors[0]!.at).toBeGreaterThanOrEqual(900);
    expect(await readdir(join(tmp, 'shots'))).toEqual([]);
  });

  it('kills a capture that exceeds timeout_ms, leaving no process behind', async () => {
    // The TEST source ignores --skip; its cost is the resolution: 8192x8192 takes ~2-3 s.
    const sink = new RecordingSink(() => ourFswebcams(tmp));
    const source = makeSource(sink, { width: 8192, height: 8192, skip: 100, timeout_ms: 150 });
    const t0 = performance.now();
    await source.start();
    await waitFor(() => sink.errors.length >= 1, 10_000);
    const elapsed = sink.errors[0]!.at - t0;
    await source.stop();

    expect(sink.errors[0]!.err.message).toMatch(/timeout_ms=150; fswebcam killed/);
    expect(elapsed).toBeGreaterThanOrEqual(140);
    expect(elapsed).toBeLessThan(1_500);
    // By the time the error is reported, the killed process has been reaped.
    expect(sink.errors[0]!.leftover).toEqual([]);
    expect(sink.frames).toEqual([]);
    expect(ourFswebcams(tmp)).toEqual([]);
    expect(await readdir(join(tmp, 'shots'))).toEqual([]);
  });

  it('stop() kills an in-flight capture promptly', async () => {
    const sink = new RecordingSink();
    const source = makeSource(sink, { width: 8192, height: 8192, timeout_ms: 60_000 });
    await source.start();
    await new Promise((r) => setTimeout(r, 300));
    expect(ourFswebcams(tmp).length).toBe(1);

    const t0 = performance.now();
    await source.stop();
    expect(performance.now() - t0).toBeLessThan(1_800);
    expect(ourFswebcams(tmp)).toEqual([]);
    expect(sink.frames).toEqual([]);
    expect(sink.errors).toEqual([]); // a stop is not a capture error
    expect(await readdir(join(tmp, 'shots'))).toEqual([]);
  });

  it('reports a missing fswebcam binary', async () => {
    const savedPath = process.env.PATH;
    process.env.PATH = join(tmp, 'empty-path');
    try {
      const sink = new RecordingSink();
      const source = makeSource(sink, {});
      await source.start();
      await waitFor(() => sink.errors.length >= 1, 5_000);
      await source.stop();
      expect(sink.errors[0]!.err.message).toMatch(/fswebcam is not installed or not on PATH/);
    } finally {
      process.env.PATH = savedPath;
    }
  });
});
