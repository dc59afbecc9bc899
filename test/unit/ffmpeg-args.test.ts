import { describe, expect, it } from 'vitest';
import { ffmpegPlan, resolveOutput } from '../../src/camera/ffmpeg-args.js';
import { SourceSchema, type FfmpegSourceConfig } from '../../src/config/schema.js';

/** A config as the schema makes it (defaults filled in). */
function config(input: Record<string, unknown>, over: Record<string, unknown> = {}): FfmpegSourceConfig {
  const parsed = SourceSchema.parse({ type: 'ffmpeg', input, ...over });
  if (parsed.type !== 'ffmpeg') throw new Error('not ffmpeg');
  return parsed;
}

const model = { size: 224, resize: 256 };
const noEnv = {};

/** The value following `flag` in argv. */
function after(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i < 0 ? undefined : args[i + 1];
}

describe('ffmpegPlan', () => {
  it('v4l2: device options before -i; quiet, no stdin; at most fps frames, never duplicated', () => {
    const plan = ffmpegPlan(
      config({ kind: 'v4l2', device: '/dev/video2', input_format: 'mjpeg', width: 1280, height: 720, framerate: 30 }, { fps: 4, output: 'mjpeg' }),
      { env: noEnv },
    );
    expect(plan.args.slice(0, 5)).toEqual(['-nostdin', '-hide_banner', '-nostats', '-loglevel', 'error']);
    const i = plan.args.indexOf('-i');
    expect(plan.args.slice(i - 8, i + 2)).toEqual(['-f', 'v4l2', '-input_format', 'mjpeg', '-video_size', '1280x720', '-framerate', '30', '-i', '/dev/video2']);
    expect(after(plan.args, '-fps_mode')).toBe('vfr');
    expect(after(plan.args, '-r')).toBe('4');
    expect(plan.args.slice(-7)).toEqual(['-c:v', 'mjpeg', '-q:v', '5', '-f', 'mjpeg', 'pipe:1']);
    expect(plan.output).toEqual({ kind: 'mjpeg' });
    expect(plan.description).toBe('/dev/video2');
    expect(plan.endOnCleanExit).toBe(false);
  });

  it('v4l2 without size or format leaves them to the device', () => {
    const plan = ffmpegPlan(config({ kind: 'v4l2' }), { env: noEnv });
    expect(plan.args).not.toContain('-video_size');
    expect(plan.args).not.toContain('-input_format');
    expect(after(plan.args, '-i')).toBe('/dev/video0');
  });

  it('refuses a v4l2 resolution whose decoded frame exceeds max_frame_bytes (config time, and at start)', () => {
    expect(() => config({ kind: 'v4l2', width: 4096, height: 4096 })).toThrow(
      /4096x4096 RGB frames are 50331648 bytes, more than max_frame_bytes \(16777216\)/,
    );
    const ok = config({ kind: 'v4l2', width: 64, height: 48 });
    const absurd = { ...ok, input: { ...ok.input, width: 4096, height: 4096 } } as FfmpegSourceConfig;
    expect(() => ffmpegPlan(absurd, { env: noEnv })).toThrow(/v4l2 4096x4096 frames are 50331648 bytes decoded, more than max_frame_bytes=16777216/);
  });

  it('the schema refuses half a resolution and ambiguous credentials', () => {
    expect(() => config({ kind: 'v4l2', width: 640 })).toThrow(/give both width and height, or neither/);
    expect(() => config({ kind: 'rtsp', url: 'rtsp://h/p', password: 'x' })).toThrow(/a password needs a username/);
    expect(() => config({ kind: 'http', url: 'http://h/p', username: 'u', password: 'x', password_env: 'X' })).toThrow(
      /password or password_env, not both/,
    );
  });

  it('raw output: ffmpeg resizes the short side, converts to RGB and centre-crops for the model', () => {
    const plan = ffmpegPlan(config({ kind: 'lavfi' }, { output: 'raw' }), { env: noEnv, modelInput: model });
    expect(after(plan.args, '-vf')).toBe('scale=256:256:force_original_aspect_ratio=increase:flags=lanczos,format=rgb24,crop=224:224');
    expect(plan.args.slice(-5)).toEqual(['-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1']);
    expect(plan.output).toEqual({ kind: 'raw', width: 224, height: 224 });
  });

  it('auto is raw when the model input is known, mjpeg otherwise; raw without it is an error', () => {
    expect(resolveOutput({ output: 'auto', max_frame_bytes: 1 << 24 }, model)).toEqual({ kind: 'raw', width: 224, height: 224 });
    expect(resolveOutput({ output: 'auto', max_frame_bytes: 1 << 24 })).toEqual({ kind: 'mjpeg' });
    expect(resolveOutput({ output: 'mjpeg', max_frame_bytes: 1 << 24 }, model)).toEqual({ kind: 'mjpeg' });
    expect(() => resolveOutput({ output: 'raw', max_frame_bytes: 1 << 24 })).toThrow(/needs the model input size/);
    expect(() => resolveOutput({ output: 'raw', max_frame_bytes: 100_000 }, model)).toThrow(/150528 bytes, more than max_frame_bytes=100000/);
  });

  it('lavfi runs in real time (-re), file too, looping with -stream_loop -1', () => {
    const lavfi = ffmpegPlan(config({ kind: 'lavfi', graph: 'testsrc2=size=320x240:rate=10' }), { env: noEnv });
    expect(lavfi.args.slice(lavfi.args.indexOf('-re'), lavfi.args.indexOf('-i') + 2)).toEqual(['-re', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=10']);
    expect(lavfi.description).toBe('lavfi');

    const looping = ffmpegPlan(config({ kind: 'file', path: '/var/clips/door.mp4' }), { env: noEnv });
    expect(looping.args).toEqual(expect.arrayContaining(['-re', '-stream_loop', '-1']));
    expect(after(looping.args, '-i')).toBe('/var/clips/door.mp4');
    expect(looping.description).toBe('door.mp4');
    expect(looping.endOnCleanExit).toBe(false);

    const once = ffmpegPlan(config({ kind: 'file', path: 'clip.mkv', loop: false }), { env: noEnv });
    expect(once.args).not.toContain('-stream_loop');
    expect(once.endOnCleanExit).toBe(true);
  });

  it('rtsp: tcp transport, socket timeout past the stall timeout, credentials URL-encoded into the URL', () => {
    const password = 'p@ss:w/rd %x';
    const plan = ffmpegPlan(
      config({ kind: 'rtsp', url: 'rtsp://10.0.0.5:554/stream1?channel=1', username: 'admin', password }, { stall_timeout_ms: 8000 }),
      { env: noEnv },
    );
    expect(after(plan.args, '-rtsp_transport')).toBe('tcp');
    expect(after(plan.args, '-timeout')).toBe('13000000');
    expect(after(plan.args, '-i')).toBe('rtsp://admin:p%40ss%3Aw%2Frd%20%25x@10.0.0.5:554/stream1?channel=1');
    expect(plan.description).toBe('rtsp://10.0.0.5:554/stream1');
  });

  it('credentials are in argv but never in the description or anything redacted', () => {
    const password = 'S3cret!pw';
    const plan = ffmpegPlan(config({ kind: 'rtsp', url: 'rtsp://cam.local/live', username: 'viewer', password_env: 'CAM_PW' }), {
      env: { CAM_PW: password },
    });
    const url = after(plan.args, '-i')!;
    expect(url).toBe(`rtsp://viewer:${encodeURIComponent(password)}@cam.local/live`);
    expect(plan.description).not.toContain(password);
    expect(plan.description).not.toContain('viewer');
    // What ffmpeg prints on errors, and the command line as it would be logged.
    const stderr = `[rtsp @ 0x55] method DESCRIBE failed: 401 Unauthorized\n${url}: Server returned 401 Unauthorized (authorization failed)`;
    for (const text of [stderr, plan.args.join(' '), `password is ${password}`, `encoded ${encodeURIComponent(password)}`]) {
      const redacted = plan.redact(text);
      expect(redacted).not.toContain(password);
      expect(redacted).not.toContain(encodeURIComponent(password));
    }
    expect(plan.redact(stderr)).toContain('rtsp://***@cam.local/live: Server returned 401');
  });

  it('credentials already in the URL are redacted too, and the query is kept out of messages', () => {
    const plan = ffmpegPlan(config({ kind: 'http', url: 'http://u:hunter22@cam/video.cgi?token=abcdef123' }), { env: noEnv });
    expect(after(plan.args, '-i')).toBe('http://u:hunter22@cam/video.cgi?token=abcdef123');
    expect(plan.description).toBe('http://cam/video.cgi');
    const redacted = plan.redact('http://u:hunter22@cam/video.cgi?token=abcdef123: Connection refused');
    expect(redacted).toBe('http://***@cam/video.cgi?***: Connection refused');
  });

  it('rejects ambiguous or missing credentials', () => {
    expect(() => ffmpegPlan(config({ kind: 'rtsp', url: 'rtsp://h/p', username: 'a', password_env: 'NOPE' }), { env: {} })).toThrow(
      'environment variable NOPE (password_env) is not set',
    );
    expect(() => ffmpegPlan(config({ kind: 'rtsp', url: 'rtsp://x:y@h/p', username: 'a', password: 'b' }), { env: {} })).toThrow(
      /already holds credentials/,
    );
  });

  it('http mjpeg: arrival time as timestamps (the stream has none) and an I/O timeout', () => {
    const plan = ffmpegPlan(config({ kind: 'http', url: 'http://127.0.0.1:8080/stream' }, { stall_timeout_ms: 1500 }), { env: noEnv });
    const i = plan.args.indexOf('-i');
    expect(plan.args.slice(i - 4, i + 2)).toEqual(['-use_wallclock_as_timestamps', '1', '-rw_timeout', '6500000', '-i', 'http://127.0.0.1:8080/stream']);
  });

  it('http snapshot: image2 re-reads the URL at fps; % in the URL is not a pattern', () => {
    const plan = ffmpegPlan(
      config({ kind: 'http', url: 'http://127.0.0.1:8080/snap.jpg', mode: 'snapshot', username: 'bob', password: '100%sure' }, { fps: 2 }),
      { env: noEnv },
    );
    const i = plan.args.indexOf('-i');
    expect(plan.args.slice(i - 15, i + 2)).toEqual([
      '-analyzeduration', '0', '-probesize', '32',
      '-re', '-f', 'image2', '-pattern_type', 'none', '-loop', '1', '-framerate', '2', '-c:v', 'mjpeg',
      '-i', 'http://bob:100%25sure@127.0.0.1:8080/snap.jpg',
    ]);
    expect(plan.redact(plan.args.join(' '))).not.toContain('100%');
  });
});
