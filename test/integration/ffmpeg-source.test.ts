import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import sharp from 'sharp';
import { FfmpegSource } from '../../src/camera/ffmpeg-source.js';
import { MjpegSplitter } from '../../src/camera/process/mjpeg-splitter.js';
import { ProcessSupervisor } from '../../src/camera/process/process-supervisor.js';
import { SourceSchema, type FfmpegSourceConfig } from '../../src/config/schema.js';
import { createSystemClock } from '../../src/core/clock.js';
import { MjpegServer } from '../helpers/mjpeg-server.js';
import { hasProgram } from '../helpers/mosquitto.js';
import { freePort } from '../helpers/ports.js';
import { groupMembers, procInfo, waitGone } from '../helpers/processes.js';
import { RecordingSink } from '../helpers/recording-sink.js';
import { SourceChild } from '../helpers/source-child-runner.js';
import { cameraSourceContract, type SourceFactoryDeps } from '../contracts/camera-source.contract.js';

// Small timings so faults show quickly; every wait below is generous (slow 2-core machine).
const FAST = { stall_timeout_ms: 1500, backoff_initial_ms: 200, backoff_max_ms: 1000 };
const MODEL = { size: 224, resize: 256 };

function config(input: Record<string, unknown>, over: Record<string, unknown> = {}): FfmpegSourceConfig {
  const parsed = SourceSchema.parse({ type: 'ffmpeg', input, fps: 5, ...FAST, ...over });
  if (parsed.type !== 'ffmpeg') throw new Error('not ffmpeg');
  return parsed;
}

describe('FfmpegSource with the real ffmpeg', () => {
  const sources: FfmpegSource[] = [];
  const servers: MjpegServer[] = [];
  const children: SourceChild[] = [];
  let tmp: string;

  function makeSource(cfg: FfmpegSourceConfig, sink: RecordingSink, modelInput?: typeof MODEL): FfmpegSource {
    const source = new FfmpegSource({
      camera: 'cam1',
      config: cfg,
      logger: pino({ level: 'silent' }),
      clock: createSystemClock(),
      sink,
      env: {},
      ...(modelInput ? { modelInput } : {}),
    });
    sources.push(source);
    return source;
  }

  async function server(opts: Parameters<typeof MjpegServer.start>[0] = {}): Promise<MjpegServer> {
    const s = await MjpegServer.start(opts);
    servers.push(s);
    return s;
  }

  /** Stops the source and checks that its ffmpeg and everything in its process group are gone. */
  async function stopAndCheck(source: FfmpegSource): Promise<void> {
    const pid = source.pid;
    await source.stop();
    if (pid !== undefined) {
      expect(procInfo(pid)).toBeUndefined();
      expect(groupMembers(pid)).toEqual([]);
    }
  }

  beforeAll(() => {
    // Fail, not skip, without the real program (Debian: ffmpeg).
    if (!hasProgram('ffmpeg')) throw new Error('ffmpeg is not installed (apt-get install ffmpeg)');
    tmp = mkdtempSync(join(tmpdir(), 'ffmpeg-src-'));
  });
  afterEach(async () => {
    await Promise.all(sources.splice(0).map((s) => s.stop()));
    await Promise.all(children.splice(0).map((c) => c.kill9()));
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  const contractSource = ({ camera, sink }: SourceFactoryDeps, cfg: FfmpegSourceConfig): FfmpegSource =>
    new FfmpegSource({ camera, config: cfg, logger: pino({ level: 'silent' }), clock: createSystemClock(), sink, env: {} });
  cameraSourceContract('ffmpeg', {
    make: (deps) => contractSource(deps, config({ kind: 'lavfi', graph: 'testsrc2=size=160x120:rate=10' }, { fps: 10 })),
    failing: (deps) => contractSource(deps, config({ kind: 'lavfi', graph: 'nosuchfilter=size=1x1' }, { backoff_initial_ms: 500, backoff_max_ms: 30_000 })),
    finite: (deps) => {
      const clip = join(tmp, 'contract-clip.mp4');
      execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=10', '-t', '1', '-pix_fmt', 'yuv420p', clip]);
      return contractSource(deps, config({ kind: 'file', path: clip, loop: false }, { fps: 10 }));
    },
    program: { name: 'ffmpeg' },
  });

  it('lavfi -> JPEG frames of the source size, seq from 1, about fps per second', async () => {
    const sink = new RecordingSink();
    const source = makeSource(config({ kind: 'lavfi', graph: 'testsrc2=size=320x240:rate=25' }, { output: 'mjpeg' }), sink, MODEL);
    await source.start();
    await sink.until(() => sink.frames.length >= 3, 15_000, '3 frames');
    const t0 = performance.now();
    const n0 = sink.frames.length;
    await new Promise((r) => setTimeout(r, 3_000));
    const rate = (sink.frames.length - n0) / ((performance.now() - t0) / 1000);
    await stopAndCheck(source);

    expect(sink.errors).toEqual([]);
    expect(rate).toBeGreaterThan(3); // fps 5 from a 25 fps source: frames are dropped, not all passed on
    expect(rate).toBeLessThan(7.5);
    expect(sink.frames.map((f) => f.seq)).toEqual(sink.frames.map((_, i) => i + 1));
    for (const frame of sink.frames.slice(0, 3)) {
      const meta = await sharp(frame.data).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', 320, 240]);
      expect(frame.raw).toBeUndefined();
      expect(frame.source).toBe('lavfi');
      expect(frame.camera).toBe('cam1');
    }
  });

  it('lavfi -> raw RGB at the model size (auto), colours in RGB order', async () => {
    const sink = new RecordingSink();
    // Pure red on the left, pure blue on the right; the centre crop keeps both halves.
    const graph = 'color=c=red:size=320x240:rate=10[l];color=c=blue:size=320x240:rate=10[r];[l][r]hstack';
    const source = makeSource(config({ kind: 'lavfi', graph }), sink, MODEL);
    await source.start();
    await sink.until(() => sink.frames.length >= 3, 15_000, '3 frames');
    await stopAndCheck(source);

    expect(sink.errors).toEqual([]);
    const frame = sink.frames[0]!;
    expect(frame.raw).toEqual({ width: 224, height: 224 });
    expect(frame.data.length).toBe(224 * 224 * 3);
    const px = (x: number, y: number): number[] => [...frame.data.subarray((y * 224 + x) * 3, (y * 224 + x) * 3 + 3)];
    const near = (got: number[], want: number[]): boolean => got.every((v, i) => Math.abs(v - want[i]!) <= 12);
    expect(near(px(10, 112), [255, 0, 0])).toBe(true);
    expect(near(px(213, 112), [0, 0, 255])).toBe(true);
  });

  it('a looping file plays on past its end; a file played once ends the source', async () => {
    const clip = join(tmp, 'clip.mp4');
    execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=10', '-t', '1', '-pix_fmt', 'yuv420p', clip]);

    const looping = new RecordingSink();
    const source = makeSource(config({ kind: 'file', path: clip }, { fps: 10, output: 'mjpeg' }), looping);
    await source.start();
    await looping.until(() => looping.frames.length >= 25, 20_000, '25 frames from a 10-frame clip');
    await stopAndCheck(source);
    expect(looping.restarts).toEqual([]);
    expect(looping.ended).toBe(0);
    expect(looping.frames[0]!.source).toBe('clip.mp4');

    const once = new RecordingSink();
    const single = makeSource(config({ kind: 'file', path: clip, loop: false }, { fps: 10, output: 'mjpeg' }), once);
    await single.start();
    await once.until(() => once.ended === 1, 20_000, 'end of the clip');
    expect(once.frames.length).toBeGreaterThanOrEqual(8);
    expect(once.frames.length).toBeLessThanOrEqual(11);
    expect(once.restarts).toEqual([]);
  });

  it('HTTP MJPEG (multipart) with Basic credentials: frames decode; rate limited to fps', async () => {
    const srv = await server({ fps: 10, auth: { username: 'bob', password: 'p@ss:w/rd %x' } });
    const sink = new RecordingSink();
    const cfg = config({ kind: 'http', url: srv.url('/stream'), username: 'bob', password: 'p@ss:w/rd %x' }, { fps: 4, output: 'mjpeg' });
    const source = makeSource(cfg, sink);
    await source.start();
    await sink.until(() => sink.frames.length >= 8, 20_000, '8 frames');
    const elapsedFrames = sink.frames.at(-1)!.capturedAt - sink.frames[0]!.capturedAt;
    await stopAndCheck(source);

    expect(sink.errors).toEqual([]);
    // 7 intervals at 4 fps = 1.75 s (10 fps would be 0.7 s).
    expect(elapsedFrames).toBeGreaterThan(1_200);
    const meta = await sharp(sink.frames[0]!.data).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', 320, 240]);
    expect(sink.frames[0]!.source).toBe(`http://127.0.0.1:${srv.port}/stream`);
  });

  it('HTTP snapshot URL: one GET per frame, about fps GETs per second', async () => {
    const srv = await server();
    const sink = new RecordingSink();
    const source = makeSource(config({ kind: 'http', url: srv.url('/snapshot'), mode: 'snapshot' }, { fps: 4 }), sink, MODEL);
    await source.start();
    await sink.until(() => sink.frames.length >= 6, 20_000, '6 frames');
    const t0 = performance.now();
    const gets0 = srv.requests.get('/snapshot') ?? 0;
    await new Promise((r) => setTimeout(r, 2_000));
    const getsPerSecond = ((srv.requests.get('/snapshot') ?? 0) - gets0) / ((performance.now() - t0) / 1000);
    await stopAndCheck(source);

    expect(sink.errors).toEqual([]);
    expect(sink.frames[0]!.raw).toEqual({ width: 224, height: 224 });
    expect(getsPerSecond).toBeGreaterThan(1.5);
    expect(getsPerSecond).toBeLessThan(6);
  });

  it('server gone mid-run: error and restart, frames resume once it is back', async () => {
    const srv = await server();
    const sink = new RecordingSink();
    const source = makeSource(config({ kind: 'http', url: srv.url('/stream') }), sink, MODEL);
    await source.start();
    await sink.until(() => sink.frames.length >= 3, 20_000, 'first frames');

    await srv.close();
    await sink.until(() => sink.restarts.length >= 2, 20_000, 'restarts while the server is down');
    expect(sink.restarts[0]!.reason).toBe('exit');
    // Reconnects fail at once ("Connection refused"), reported with ffmpeg's reason.
    await sink.until(() => sink.messages().some((m) => /Connection refused/.test(m)), 20_000, 'connection refused');
    const before = sink.frames.length;
    const backAt = performance.now();
    await srv.restart();
    await sink.until(() => sink.frames.length >= before + 3, 20_000, 'frames after the server is back');
    // Within backoff_max_ms (+20% jitter) plus ffmpeg's start, not after a stall timeout.
    expect(performance.now() - backAt).toBeLessThan(FAST.backoff_max_ms * 1.2 + 8_000);
    for (const e of sink.errors) expect(e.err.message).toContain(`http://127.0.0.1:${srv.port}/stream`);
  });

  it('ffmpeg killed with SIGKILL: restart, frames resume', async () => {
    const sink = new RecordingSink();
    const source = makeSource(config({ kind: 'lavfi', graph: 'testsrc2=size=320x240:rate=10' }), sink, MODEL);
    await source.start();
    await sink.until(() => sink.frames.length >= 2, 15_000, 'first frames');
    const first = source.pid!;
    process.kill(first, 'SIGKILL');
    await sink.until(() => sink.restarts.length === 1, 10_000, 'restart');
    const n = sink.frames.length;
    await sink.until(() => sink.frames.length >= n + 2, 15_000, 'frames from the new ffmpeg');
    expect(sink.restarts[0]!.reason).toBe('exit');
    expect(sink.restarts[0]!.err.message).toMatch(/^ffmpeg was killed by SIGKILL .* \[lavfi\] \(restart in 0\.[2-9] s\)$/);
    expect(source.pid).not.toBe(first);
    await stopAndCheck(source);
  });

  it('a server that stops sending (connection open) is a stall: killed after stall_timeout_ms, restarted', async () => {
    const srv = await server();
    const sink = new RecordingSink();
    const source = makeSource(config({ kind: 'http', url: srv.url('/stream') }), sink, MODEL);
    await source.start();
    await sink.until(() => sink.frames.length >= 3, 20_000, 'first frames');
    const stalledPid = source.pid!;
    srv.stall();
    const stalledAt = performance.now();
    await sink.until(() => sink.restarts.length >= 1, 20_000, 'stall restart');
    const restart = sink.restarts[0]!;
    expect(restart.reason).toBe('stall');
    expect(restart.err.message).toMatch(/no frame from ffmpeg for 1500 ms \(stall_timeout_ms\); killed/);
    // The last frame may have been on its way when stall() was called: allow one frame interval.
    expect(restart.at - stalledAt).toBeGreaterThan(FAST.stall_timeout_ms - 300);
    expect(restart.at - stalledAt).toBeLessThan(FAST.stall_timeout_ms + 5_000);
    expect(procInfo(stalledPid)).toBeUndefined();

    srv.resume();
    const n = sink.frames.length;
    await sink.until(() => sink.frames.length >= n + 3, 20_000, 'frames after resume');
    await stopAndCheck(source);
  });

  it('junk from the server: a clear error and a restart, no crash', async () => {
    const srv = await server();
    const sink = new RecordingSink();
    const source = makeSource(config({ kind: 'http', url: srv.url('/junk') }, { output: 'mjpeg' }), sink);
    await source.start();
    await sink.until(() => sink.restarts.length >= 1, 20_000, 'restart');
    await stopAndCheck(source);
    expect(sink.frames).toEqual([]);
    // ffmpeg's own complaint about the data is part of the message.
    expect(sink.restarts[0]!.err.message).toMatch(/JPEG|Invalid data|mjpeg/i);
  });

  it('garbage on the pipe (raw pixels read as MJPEG): fatal stream error, restart with backoff', async () => {
    const sink = new RecordingSink();
    const supervisor = new ProcessSupervisor({
      command: 'ffmpeg',
      args: ['-nostdin', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=10', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'],
      description: 'lavfi',
      redact: (t) => t,
      createSplitter: (d) => new MjpegSplitter(d),
      maxFrameBytes: 512 * 1024,
      onFrame: () => sink.frames.push({ camera: 'x', seq: 0, capturedAt: 0, source: 'x', data: Buffer.alloc(0) }),
      endOnCleanExit: false,
      sink,
      spawn,
      clock: createSystemClock(),
      logger: pino({ level: 'silent' }),
      timing: { stallTimeoutMs: 10_000, backoffInitialMs: 200, backoffMaxMs: 1000, killGraceMs: 2000 },
      random: () => 0,
    });
    await supervisor.start();
    try {
      await sink.until(() => sink.restarts.length >= 2, 30_000, 'two restarts');
    } finally {
      await supervisor.stop();
    }
    expect(sink.restarts.map((r) => r.reason)).toEqual(['error', 'error']);
    expect(sink.restarts[0]!.err.message).toMatch(/the stream is not MJPEG|max_frame_bytes/);
    expect(sink.restarts[0]!.err.message).toContain('(restart in 0.2 s)');
    expect(sink.restarts[1]!.err.message).toContain('(restart in 0.4 s)');
  });

  it('ffmpeg exiting at once: the stderr reason, then retries with growing delays', async () => {
    const port = await freePort(); // nothing listens there
    const sink = new RecordingSink();
    const source = makeSource(config({ kind: 'http', url: `http://127.0.0.1:${port}/nothing` }), sink, MODEL);
    await source.start();
    await sink.until(() => sink.restarts.length >= 4, 30_000, 'four restarts');
    await stopAndCheck(source);
    expect(sink.frames).toEqual([]);
    const first = sink.restarts[0]!.err.message;
    expect(first).toMatch(/^ffmpeg exited with code \d+ .* before its first frame \[http:\/\/127\.0\.0\.1:\d+\/nothing\]: .*Connection refused/);
    // 200, 400, 800 ms (+ up to 20%): each gap at least the delay announced.
    const gaps = sink.restarts.slice(1).map((r, i) => r.at - sink.restarts[i]!.at);
    expect(gaps[0]!).toBeGreaterThanOrEqual(190);
    expect(gaps[1]!).toBeGreaterThanOrEqual(390);
    expect(gaps[2]!).toBeGreaterThanOrEqual(790);
    expect(sink.restarts.map((r) => r.reason)).toEqual(sink.restarts.map(() => 'exit'));
  });

  it('an unknown lavfi filter is reported with ffmpeg\'s own words', async () => {
    const sink = new RecordingSink();
    const source = makeSource(config({ kind: 'lavfi', graph: 'nosuchfilter=size=1x1' }), sink, MODEL);
    await source.start();
    await sink.until(() => sink.errors.length >= 1, 15_000, 'error');
    await source.stop();
    expect(sink.errors[0]!.err.message).toMatch(/No such filter: 'nosuchfilter'/);
  });

  it('a missing ffmpeg binary is a clear error, retried', async () => {
    const saved = process.env.PATH;
    process.env.PATH = join(tmp, 'empty');
    try {
      const sink = new RecordingSink();
      const source = makeSource(config({ kind: 'lavfi' }), sink);
      await source.start();
      await sink.until(() => sink.restarts.length >= 2, 15_000, 'restarts');
      await source.stop();
      expect(sink.restarts[0]!.reason).toBe('error');
      expect(sink.restarts[0]!.err.message).toMatch(/ffmpeg is not installed or not on PATH/);
    } finally {
      process.env.PATH = saved;
    }
  });

  it('configuration errors reject start() and start nothing', async () => {
    const sink = new RecordingSink();
    const source = makeSource(config({ kind: 'lavfi' }, { output: 'raw' }), sink);
    await expect(source.start()).rejects.toThrow(/needs the model input size/);
    expect(source.pid).toBeUndefined();
  });

  // The daemon itself SIGKILLed: its ffmpeg must not live on.
  for (const [name, stalled] of [
    ['producing frames', false],
    ['stalled on a silent server', true],
  ] as const) {
    it(`daemon killed with -9 while ffmpeg is ${name}: ffmpeg is gone within seconds`, async () => {
      const srv = await server();
      if (stalled) srv.stall();
      const child = SourceChild.start({
        type: 'ffmpeg',
        input: { kind: 'http', url: srv.url('/stream') },
        fps: 5,
        // Long timeouts: only the daemon's death may end this ffmpeg.
        stall_timeout_ms: 60_000,
      });
      children.push(child);
      await child.until(() => child.count('started') === 1, 30_000, 'source started');
      if (!stalled) await child.until(() => child.count('frame') >= 2, 20_000, 'frames');
      await child.until(() => child.children('ffmpeg').length === 1, 10_000, 'ffmpeg child');
      const ffmpeg = child.children('ffmpeg')[0]!;
      await child.kill9();
      const gone = await waitGone(ffmpeg.pid, 5_000);
      expect(groupMembers(ffmpeg.pid)).toEqual([]);
      console.log(`ffmpeg (${name}) gone ${gone.toFixed(0)} ms after its parent was SIGKILLed`);
    });
  }
});
