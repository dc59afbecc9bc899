import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import sharp from 'sharp';
import { FfmpegSource } from '../../src/camera/ffmpeg-source.js';
import { SourceSchema, type FfmpegSourceConfig } from '../../src/config/schema.js';
import { createSystemClock } from '../../src/core/clock.js';
import { procInfo } from '../helpers/processes.js';
import { RecordingSink } from '../helpers/recording-sink.js';
import { RtspServer } from '../helpers/rtsp-server.js';

const USER = 'viewer';
const PASSWORD = 'p@ss:w/rd 42';

function config(input: Record<string, unknown>, over: Record<string, unknown> = {}): FfmpegSourceConfig {
  const parsed = SourceSchema.parse({
    type: 'ffmpeg',
    input: { kind: 'rtsp', ...input },
    fps: 5,
    stall_timeout_ms: 3000,
    backoff_initial_ms: 200,
    backoff_max_ms: 1000,
    ...over,
  });
  if (parsed.type !== 'ffmpeg') throw new Error('not ffmpeg');
  return parsed;
}

describe('FfmpegSource over RTSP (gst-rtsp-server on 127.0.0.1)', () => {
  const sources: FfmpegSource[] = [];
  const servers: RtspServer[] = [];

  function makeSource(cfg: FfmpegSourceConfig, sink: RecordingSink, env: Record<string, string> = {}): FfmpegSource {
    const source = new FfmpegSource({
      camera: 'door',
      config: cfg,
      logger: pino({ level: 'silent' }),
      clock: createSystemClock(),
      sink,
      env,
      modelInput: { size: 224, resize: 256 },
    });
    sources.push(source);
    return source;
  }

  async function server(): Promise<RtspServer> {
    const s = await RtspServer.start({ username: USER, password: PASSWORD });
    servers.push(s);
    return s;
  }

  afterEach(async () => {
    await Promise.all(sources.splice(0).map((s) => s.stop()));
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });

  it('frames over RTSP/TCP with username and password (from password_env)', async () => {
    const srv = await server();
    const sink = new RecordingSink();
    const source = makeSource(config({ url: srv.url, username: USER, password_env: 'DOOR_PW' }, { output: 'mjpeg' }), sink, { DOOR_PW: PASSWORD });
    await source.start();
    await sink.until(() => sink.frames.length >= 5, 30_000, '5 frames');
    const pid = source.pid!;
    await source.stop();
    expect(procInfo(pid)).toBeUndefined();

    expect(sink.errors).toEqual([]);
    const meta = await sharp(sink.frames[0]!.data).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', 320, 240]);
    expect(sink.frames[0]!.source).toBe(srv.url);
  });

  it('a wrong password: ffmpeg\'s 401, never the password, and retries', async () => {
    const srv = await server();
    const sink = new RecordingSink();
    const wrong = 'not-the-password';
    const source = makeSource(config({ url: srv.url, username: USER, password: wrong }), sink);
    await source.start();
    await sink.until(() => sink.restarts.length >= 2, 30_000, 'restarts');
    await source.stop();
    expect(sink.frames).toEqual([]);
    const message = sink.restarts[0]!.err.message;
    expect(message).toMatch(/401 Unauthorized/);
    for (const m of [...sink.messages(), ...sink.restarts.map((r) => r.err.message)]) {
      expect(m).not.toContain(wrong);
      expect(m).not.toContain(encodeURIComponent(wrong));
    }
  });

  it('server killed: error and restart; frames resume once it is back on the same port', async () => {
    const srv = await server();
    const sink = new RecordingSink();
    const source = makeSource(config({ url: srv.url, username: USER, password: PASSWORD }), sink);
    await source.start();
    await sink.until(() => sink.frames.length >= 3, 30_000, 'first frames');
    expect(sink.frames[0]!.raw).toEqual({ width: 224, height: 224 });

    await srv.stop();
    await sink.until(() => sink.restarts.length >= 2, 30_000, 'restarts while the server is down');
    expect(['exit', 'stall']).toContain(sink.restarts[0]!.reason);
    const before = sink.frames.length;
    await srv.restart();
    await sink.until(() => sink.frames.length >= before + 3, 30_000, 'frames after the server is back');
    for (const m of [...sink.messages(), ...sink.restarts.map((r) => r.err.message)]) {
      expect(m).not.toContain(PASSWORD);
      expect(m).not.toContain(encodeURIComponent(PASSWORD));
      expect(m).toContain(srv.url);
    }
  });
});
