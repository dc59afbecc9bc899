import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import sharp from 'sharp';
import { GstreamerSource } from '../../src/camera/gstreamer-source.js';
import { SourceSchema, type GstreamerSourceConfig } from '../../src/config/schema.js';
import { createSystemClock } from '../../src/core/clock.js';
import { hasProgram } from '../helpers/mosquitto.js';
import { findProcesses, groupMembers, procInfo, waitGone } from '../helpers/processes.js';
import { RecordingSink } from '../helpers/recording-sink.js';
import { SourceChild } from '../helpers/source-child-runner.js';
import { cameraSourceContract, type SourceFactoryDeps } from '../contracts/camera-source.contract.js';

const FAST = { stall_timeout_ms: 1500, backoff_initial_ms: 200, backoff_max_ms: 1000 };
const JPEG_PIPELINE = 'videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=10/1 ! jpegenc ! fdsink';
const RAW_PIPELINE = 'videotestsrc is-live=true pattern=red ! video/x-raw,format=RGB,width=64,height=48,framerate=10/1 ! fdsink';

function config(over: Record<string, unknown>): GstreamerSourceConfig {
  const parsed = SourceSchema.parse({ type: 'gstreamer', pipeline: JPEG_PIPELINE, fps: 10, ...FAST, ...over });
  if (parsed.type !== 'gstreamer') throw new Error('not gstreamer');
  return parsed;
}

describe('GstreamerSource with the real gst-launch-1.0', () => {
  const sources: GstreamerSource[] = [];
  const children: SourceChild[] = [];

  function makeSource(cfg: GstreamerSourceConfig, sink: RecordingSink): GstreamerSource {
    const source = new GstreamerSource({ camera: 'csi0', config: cfg, logger: pino({ level: 'silent' }), clock: createSystemClock(), sink });
    sources.push(source);
    return source;
  }

  async function stopAndCheck(source: GstreamerSource): Promise<void> {
    const pid = source.pid;
    expect(pid).toBeDefined();
    await source.stop();
    expect(procInfo(pid!)).toBeUndefined();
    expect(groupMembers(pid!)).toEqual([]);
  }

  beforeAll(() => {
    // Fail, not skip, without the real program.
    if (!hasProgram('gst-launch-1.0')) {
      throw new Error('gst-launch-1.0 is not installed (apt-get install gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good)');
    }
  });

  afterEach(async () => {
    await Promise.all(sources.splice(0).map((s) => s.stop()));
    await Promise.all(children.splice(0).map((c) => c.kill9()));
  });

  const contractSource = ({ camera, sink }: SourceFactoryDeps, cfg: GstreamerSourceConfig): GstreamerSource =>
    new GstreamerSource({ camera, config: cfg, logger: pino({ level: 'silent' }), clock: createSystemClock(), sink });
  cameraSourceContract('gstreamer', {
    make: (deps) => contractSource(deps, config({ pipeline: 'videotestsrc is-live=true ! video/x-raw,width=64,height=48,framerate=10/1 ! jpegenc ! fdsink' })),
    failing: (deps) => contractSource(deps, config({ pipeline: 'nosuchelement ! jpegenc ! fdsink', backoff_initial_ms: 500, backoff_max_ms: 30_000 })),
    finite: 'never', // an EOS is an exit for a live camera: restarted, never end()
    program: { name: 'gst-launch-1.0' },
  });

  it('jpegenc ! fdsink: JPEG frames, at most fps of them; stop() leaves no gst-launch', async () => {
    const sink = new RecordingSink();
    const source = makeSource(config({ fps: 4 }), sink);
    await source.start();
    await sink.until(() => sink.frames.length >= 3, 20_000, '3 frames');
    const t0 = performance.now();
    const n0 = sink.frames.length;
    await new Promise((r) => setTimeout(r, 3_000));
    const rate = (sink.frames.length - n0) / ((performance.now() - t0) / 1000);
    await stopAndCheck(source);

    expect(sink.errors).toEqual([]);
    expect(rate).toBeGreaterThan(2.5); // the pipeline makes 10 fps; 4 are passed on
    expect(rate).toBeLessThan(5.5);
    expect(sink.frames.map((f) => f.seq)).toEqual(sink.frames.map((_, i) => i + 1));
    const meta = await sharp(sink.frames[0]!.data).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', 320, 240]);
    expect(sink.frames[0]!.source).toBe('gstreamer:videotestsrc');
    expect(sink.frames[0]!.raw).toBeUndefined();
  });

  it('video/x-raw,format=RGB ! fdsink: raw frames of width x height', async () => {
    const sink = new RecordingSink();
    const source = makeSource(config({ pipeline: RAW_PIPELINE, format: 'raw', width: 64, height: 48 }), sink);
    await source.start();
    await sink.until(() => sink.frames.length >= 3, 20_000, '3 frames');
    await stopAndCheck(source);

    expect(sink.errors).toEqual([]);
    const frame = sink.frames[1]!;
    expect(frame.raw).toEqual({ width: 64, height: 48 });
    expect(frame.data.length).toBe(64 * 48 * 3);
    expect([...frame.data.subarray(0, 3)]).toEqual([255, 0, 0]);
  });

  it('a pipeline without fdsink is rejected clearly, and nothing is started', async () => {
    const sink = new RecordingSink();
    const source = makeSource(config({ pipeline: 'videotestsrc ! jpegenc ! filesink location=/tmp/x.jpg' }), sink);
    await expect(source.start()).rejects.toThrow(/must end in "fdsink".*ends in "filesink"/);
    expect(source.pid).toBeUndefined();
    expect(findProcesses((argv) => argv.includes('location=/tmp/x.jpg'))).toEqual([]);
  });

  it('an unknown element: gst-launch\'s reason, then retries', async () => {
    const sink = new RecordingSink();
    const source = makeSource(config({ pipeline: 'nvarguscamerasrc ! jpegenc ! fdsink' }), sink);
    await source.start();
    await sink.until(() => sink.restarts.length >= 2, 15_000, 'restarts');
    await source.stop();
    expect(sink.restarts[0]!.reason).toBe('exit');
    expect(sink.restarts[0]!.err.message).toMatch(
      /^gst-launch-1\.0 exited with code 1 .* before its first frame \[gstreamer:nvarguscamerasrc\]: .*no element "nvarguscamerasrc"/,
    );
  });

  it('gst-launch killed with SIGKILL is restarted', async () => {
    const sink = new RecordingSink();
    const source = makeSource(config({}), sink);
    await source.start();
    await sink.until(() => sink.frames.length >= 2, 20_000, 'frames');
    process.kill(source.pid!, 'SIGKILL');
    await sink.until(() => sink.restarts.length === 1, 10_000, 'restart');
    const n = sink.frames.length;
    await sink.until(() => sink.frames.length >= n + 2, 20_000, 'frames after restart');
    expect(sink.restarts[0]!.err.message).toMatch(/gst-launch-1\.0 was killed by SIGKILL/);
    await stopAndCheck(source);
  });

  it('a pipeline that stops producing is a stall', async () => {
    const sink = new RecordingSink();
    // A live source at one frame per 10 s: a frame at once, then silence (no EOS, no exit).
    const source = makeSource(config({ pipeline: 'videotestsrc is-live=true ! video/x-raw,width=64,height=48,framerate=1/10 ! jpegenc ! fdsink' }), sink);
    await source.start();
    await sink.until(() => sink.restarts.length >= 1, 20_000, 'stall restart');
    await source.stop();
    expect(sink.frames.length).toBeGreaterThanOrEqual(1);
    expect(sink.restarts[0]!.reason).toBe('stall');
    expect(sink.restarts[0]!.err.message).toMatch(/no frame from gst-launch-1\.0 for 1500 ms/);
  });

  it('daemon killed with -9: gst-launch is gone within seconds', async () => {
    const child = SourceChild.start({ type: 'gstreamer', pipeline: JPEG_PIPELINE, stall_timeout_ms: 60_000 });
    children.push(child);
    await child.until(() => child.count('frame') >= 2, 30_000, 'frames');
    const gst = child.children('gst-launch-1.0')[0]!;
    expect(gst).toBeDefined();
    await child.kill9();
    const gone = await waitGone(gst.pid, 5_000);
    console.log(`gst-launch gone ${gone.toFixed(0)} ms after its parent was SIGKILLed`);
  });
});
