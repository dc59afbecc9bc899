/**
 * What every camera source promises (FrameSource and FrameSink in src/camera/frame.ts), as one
 * suite that each source's test file runs with factories for a real source of its kind (the
 * pattern of MQTT.js's test/node/abstract_store.ts):
 *  - start() delivers frames to the sink: seq 1, 2, 3, ... without gaps, this camera's name,
 *    capture times (epoch ms) in order and not before start(), non-empty data (raw frames of
 *    exactly width x height x 3 bytes); start() twice runs one capture;
 *  - stop() resolves once nothing is left running (no capture process of this source), and no
 *    frame, error, restart or end reaches the sink after it resolved; it does so before any
 *    frame, right after start(), while the source waits to retry, and called again or twice
 *    at once (every call resolves only once the capture is over);
 *  - a capture that fails is reported through sink.captureError, start() still resolves, and
 *    the source retries (a second error comes) instead of giving up or throwing;
 *  - a source whose input runs out calls end() once, after its last frame; a live camera never
 *    calls it. Which one a source is, is a parameter (`finite`).
 * FrameSource has no pause/resume: the daemon pauses a camera by stopping its source and
 * resumes it with a new one (daemon/cameras.ts), which the stop() cases cover.
 *
 * Not here: what is specific to one source (file order and pacing, a stream's stall watchdog,
 * ffmpeg's inputs, fswebcam's timeout, ...) stays in its own test file. Everything below is
 * behaviour; the waits are generous deadlines, never measured durations.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Frame, FrameSink, FrameSource } from '../../src/camera/frame.js';
import { findProcesses } from '../helpers/processes.js';
import { RecordingSink } from '../helpers/recording-sink.js';

const CAMERA = 'contract-cam';
/** How long the sink is watched for anything arriving after stop() or end(). */
const QUIET_MS = 500;
/** Deadline for frames, errors and ends (process sources start slowly on a busy 2-core machine). */
const PATIENCE_MS = 20_000;

export interface SourceFactoryDeps {
  camera: string;
  sink: FrameSink;
}

export type SourceFactory = (deps: SourceFactoryDeps) => FrameSource | Promise<FrameSource>;

export interface CameraSourceContract {
  /** A working source that delivers several frames a second. */
  make: SourceFactory;
  /**
   * A source whose every capture fails for a real reason (a missing directory or device, an
   * unknown element). It is stopped during its wait before the third attempt; stop() must
   * resolve within the 10 s deadline whatever that wait is.
   */
  failing: SourceFactory;
  /** A source whose input runs out (it must end()); 'never' for a live camera (it must not). */
  finite: SourceFactory | 'never';
  /** The program each capture runs as a child of this process (checked gone once stop() resolves); 'in-process' when none. */
  program: { name: string } | 'in-process';
}

/** Everything the sink heard, in order: nothing may follow a resolved stop() or an end(). */
class ContractSink extends RecordingSink {
  events: string[] = [];
  override push(frame: Frame): void {
    this.events.push('frame');
    super.push(frame);
  }
  override captureError(err: Error): void {
    this.events.push('error');
    super.captureError(err);
  }
  override end(): void {
    this.events.push('end');
    super.end();
  }
  override restarting(reason: 'stall' | 'exit' | 'error', err: Error): void {
    this.events.push(`restart:${reason}`);
    super.restarting(reason, err);
  }
  skipped(): void {
    this.events.push('skipped');
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Rejects when `p` has not settled within `ms` (a deadline, not a measurement). */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not resolve within ${ms} ms`)), ms)));
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

export function cameraSourceContract(name: string, contract: CameraSourceContract): void {
  describe(`camera source contract: ${name}`, () => {
    const made: FrameSource[] = [];

    async function make(factory: SourceFactory): Promise<{ source: FrameSource; sink: ContractSink }> {
      const sink = new ContractSink();
      const source = await factory({ camera: CAMERA, sink });
      made.push(source);
      return { source, sink };
    }

    /** Capture processes of this source still alive: children of this test process running the program. */
    function running(): number[] {
      if (contract.program === 'in-process') return [];
      const program = contract.program.name;
      // A word of the command line: `setpriv ... ffmpeg ...` before its exec, `sh -c 'exec fswebcam ...'` before its own.
      const word = new RegExp(`(^|[\\s/])${program.replace(/[.]/g, '\\.')}(\\s|$)`);
      return findProcesses((argv) => word.test(argv.join(' ')))
        .filter((p) => p.ppid === process.pid)
        .map((p) => p.pid);
    }

    /** A stop() resolves (deadline 10 s), leaving no capture process, and the sink hears nothing more. */
    async function stopAndWatch(stopping: Promise<void>, sink: ContractSink, what = 'stop()'): Promise<void> {
      await within(stopping, 10_000, what);
      expect(running(), `capture processes left when ${what} resolved`).toEqual([]);
      const heard = sink.events.length;
      await sleep(QUIET_MS);
      expect(sink.events.slice(heard), `reported after ${what} resolved`).toEqual([]);
    }

    afterEach(async () => {
      await Promise.all(made.splice(0).map((s) => s.stop()));
    });

    it(`start() delivers frames: seq from 1 without gaps, this camera, capture times in order${contract.finite === 'never' ? ', never end()' : ''}; nothing after stop()`, async () => {
      const { source, sink } = await make(contract.make);
      const before = Date.now();
      await Promise.all([source.start(), source.start()]); // one capture, not two
      await sink.until(() => sink.frames.length >= 3, PATIENCE_MS, '3 frames');
      const now = Date.now();
      await stopAndWatch(source.stop(), sink);

      expect(sink.messages()).toEqual([]);
      const frames = sink.frames;
      expect(frames.map((f) => f.seq)).toEqual(frames.map((_, i) => i + 1));
      for (const [i, frame] of frames.entries()) {
        expect(frame.camera).toBe(CAMERA);
        expect(frame.source.length).toBeGreaterThan(0);
        expect(frame.data.length).toBeGreaterThan(0);
        if (frame.raw) expect(frame.data.length).toBe(frame.raw.width * frame.raw.height * 3);
        expect(frame.capturedAt).toBeGreaterThanOrEqual(i === 0 ? before : frames[i - 1]!.capturedAt);
      }
      expect(frames.slice(0, 3).every((f) => f.capturedAt <= now)).toBe(true);
      if (contract.finite === 'never') expect(sink.ended).toBe(0);
    });

    it('stop() before start() resolves; stop() right after start(), before any frame, resolves and nothing comes after it', async () => {
      const idle = await make(contract.make);
      await within(idle.source.stop(), 10_000, 'stop() of a source never started');
      expect(idle.sink.events).toEqual([]);

      const { source, sink } = await make(contract.make);
      const started = source.start();
      const stopped = source.stop();
      await within(started, 10_000, 'start()');
      await stopAndWatch(stopped, sink, 'stop() right after start()');
    });

    it('stop() is idempotent: twice at once and once more, each resolving only once the capture is over', async () => {
      const { source, sink } = await make(contract.make);
      await source.start();
      await sink.until(() => sink.frames.length >= 1, PATIENCE_MS, 'a frame');
      const after = (call: string) => () => expect(running(), `capture processes left when the ${call} stop() resolved`).toEqual([]);
      await within(Promise.all([source.stop().then(after('first')), source.stop().then(after('second'))]), 10_000, 'two concurrent stop()');
      await stopAndWatch(source.stop(), sink, 'a third stop()');
    });

    it('a failing capture is reported through captureError, start() resolves, the source retries; stop() while it waits resolves', async () => {
      const { source, sink } = await make(contract.failing);
      await within(source.start(), 10_000, 'start()');
      await sink.until(() => sink.errors.length >= 2, PATIENCE_MS, 'a second capture error (a retry)');
      for (const { err } of sink.errors) {
        expect(err).toBeInstanceOf(Error);
        expect(err.message.length).toBeGreaterThan(0);
      }
      expect(sink.frames).toEqual([]);
      expect(sink.ended).toBe(0);
      // Just after an error the source waits before its next attempt.
      await stopAndWatch(source.stop(), sink, 'stop() while waiting to retry');
    });

    const finite = contract.finite;
    if (finite !== 'never') {
      it('a source whose input runs out calls end() once, after its last frame; stop() after that resolves', async () => {
        const { source, sink } = await make(finite);
        await source.start();
        await sink.until(() => sink.ended > 0, PATIENCE_MS, 'end()');
        await sleep(QUIET_MS);
        expect(sink.events.filter((e) => e === 'end')).toHaveLength(1);
        expect(sink.events.at(-1)).toBe('end');
        expect(sink.frames.length).toBeGreaterThan(0);
        expect(sink.messages()).toEqual([]);
        await stopAndWatch(source.stop(), sink, 'stop() after end()');
      });
    }
  });
}
