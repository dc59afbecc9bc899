/**
 * Pure: an ffmpeg source config -> the ffmpeg command line, plus what the source needs to
 * describe it without leaking credentials. Needs ffmpeg >= 5.1 (-fps_mode, RTSP -timeout as
 * the socket timeout; ffmpeg 4.x read -timeout as a listen timeout): Debian 12, Raspberry Pi
 * OS bookworm, Ubuntu 24.04.
 */
import { basename } from 'node:path';
import type { FfmpegInputConfig, FfmpegSourceConfig } from '../config/schema.js';
import { effectiveStallTimeout } from './process/process-supervisor.js';

/** The model's input: the short side is resized to `resize`, then `size` x `size` is cropped. */
export interface ModelInput {
  size: number;
  resize: number;
}

export type FfmpegOutput = { kind: 'mjpeg' } | { kind: 'raw'; width: number; height: number };

export interface FfmpegPlan {
  args: string[];
  output: FfmpegOutput;
  /** The input without credentials or query: /dev/video0, rtsp://host/path, clip.mp4, lavfi. */
  description: string;
  /** Removes the credentials (and the URL query) from any text ffmpeg or we produce. */
  redact: (text: string) => string;
  /** A file played once ends; every other input is live and is restarted when it ends. */
  endOnCleanExit: boolean;
}

export interface FfmpegArgsOptions {
  modelInput?: ModelInput;
  /** Where `password_env` is looked up. */
  env: Record<string, string | undefined>;
}

/** JPEG quality scale 2 (best) - 31; 5 is ~85% quality, plenty for a classifier. */
const MJPEG_QSCALE = 5;
// An input timeout makes ffmpeg itself give up on a dead server. It is longer than the stall
// timeout, so while the daemon lives its watchdog decides (reason 'stall'); the timeout is
// what ends a stalled ffmpeg whose daemon was SIGKILLed where setpriv is missing.
const INPUT_TIMEOUT_MARGIN_MS = 5_000;

const URL_WITH_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@]*@/gi;

/**
 * `auto`: raw whenever the model input is known. Measured on this 2-core x86 box, 10 fps
 * testsrc2 (incl. ~0.5/1.0 ms to generate it), ffmpeg CPU per frame, then the daemon's
 * decodeAndCrop (sharp decode + resize + crop) CPU per frame:
 *   640x480:  mjpeg 2.0-2.3 ms + 3.0 ms in the daemon = ~5.2 ms; raw 2.0-2.8 ms + 0 = ~2.4 ms
 *   1280x720: mjpeg 4.4-4.8 ms + 4.7 ms in the daemon = ~9.4 ms; raw 3.9-4.0 ms + 0 = ~4.0 ms
 * so raw halves the CPU per frame (ffmpeg's JPEG encode and sharp's decode both vanish; the
 * scale costs about what the encode did), and the pixels skip a lossy JPEG round trip.
 * A raw frame is 150 KB (224x224x3) against 20-50 KB of JPEG: nothing on a pipe.
 */
export function resolveOutput(config: Pick<FfmpegSourceConfig, 'output' | 'max_frame_bytes'>, modelInput?: ModelInput): FfmpegOutput {
  if (config.output === 'mjpeg' || (config.output === 'auto' && !modelInput)) return { kind: 'mjpeg' };
  if (!modelInput) throw new Error('output "raw" needs the model input size, which this source was not given; use output "mjpeg"');
  const bytes = modelInput.size * modelInput.size * 3;
  if (bytes > config.max_frame_bytes) {
    throw new Error(
      `raw frames of ${modelInput.size}x${modelInput.size} RGB are ${bytes} bytes, more than max_frame_bytes=${config.max_frame_bytes}`,
    );
  }
  return { kind: 'raw', width: modelInput.size, height: modelInput.size };
}

export function ffmpegPlan(config: FfmpegSourceConfig, opts: FfmpegArgsOptions): FfmpegPlan {
  const output = resolveOutput(config, opts.modelInput);
  const input = config.input;
  const secrets = inputSecrets(input, opts.env);
  const args = ['-nostdin', '-hide_banner', '-nostats', '-loglevel', 'error'];
  args.push(...inputArgs(config, secrets));
  // At most `fps` frames per second, never duplicated: `-r` with vfr drops frames that would
  // share a 1/fps slot, while the fps filter would also repeat frames of a slower input.
  args.push('-map', '0:v:0', '-an', '-sn', '-dn', '-fps_mode', 'vfr', '-r', String(config.fps));
  if (output.kind === 'raw') {
    const { size, resize } = opts.modelInput!;
    // The daemon's preprocessing, done by ffmpeg: short side to `resize` (lanczos, as the
    // presets' sharp kernel), RGB, centre crop `size` x `size` (crop centres by default).
    args.push('-vf', `scale=${resize}:${resize}:force_original_aspect_ratio=increase:flags=lanczos,format=rgb24,crop=${size}:${size}`);
    args.push('-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1');
  } else {
    args.push('-c:v', 'mjpeg', '-q:v', String(MJPEG_QSCALE), '-f', 'mjpeg', 'pipe:1');
  }
  return {
    args,
    output,
    description: describeInput(input),
    redact: redactor(secrets),
    endOnCleanExit: input.kind === 'file' && !input.loop,
  };
}

interface Secrets {
  /** The URL given to ffmpeg, credentials inserted. */
  url?: string;
  /** Literal strings never to show. */
  literals: string[];
}

function inputSecrets(input: FfmpegInputConfig, env: Record<string, string | undefined>): Secrets {
  if (input.kind !== 'rtsp' && input.kind !== 'http') return { literals: [] };
  let password = input.password;
  if (password === undefined && input.password_env !== undefined) {
    password = env[input.password_env];
    if (password === undefined) throw new Error(`environment variable ${input.password_env} (password_env) is not set`);
  }
  const literals = [password, password && encodeURIComponent(password)].filter((s): s is string => !!s && s.length >= 4);
  const query = /\?[^#]*/.exec(input.url)?.[0];
  if (query && query.length > 1) literals.push(query.slice(1));
  if (input.username === undefined) {
    if (password !== undefined) throw new Error('a password needs a username');
    return { url: input.url, literals };
  }
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)(.*)$/i.exec(input.url);
  if (!m) throw new Error('cannot insert credentials into this URL');
  const [, scheme, authority, rest] = m;
  if (authority!.includes('@')) throw new Error('the URL already holds credentials; use either them or username/password');
  const userinfo = encodeURIComponent(input.username) + (password !== undefined ? `:${encodeURIComponent(password)}` : '');
  return { url: `${scheme}${userinfo}@${authority}${rest}`, literals };
}

function inputArgs(config: FfmpegSourceConfig, secrets: Secrets): string[] {
  const input = config.input;
  const timeoutUs = String((effectiveStallTimeout(config.stall_timeout_ms, config.fps) + INPUT_TIMEOUT_MARGIN_MS) * 1000);
  switch (input.kind) {
    case 'v4l2': {
      if (input.width !== undefined && input.height !== undefined && input.width * input.height * 3 > config.max_frame_bytes) {
        throw new Error(
          `v4l2 ${input.width}x${input.height} frames are ${input.width * input.height * 3} bytes decoded, ` +
            `more than max_frame_bytes=${config.max_frame_bytes}; lower the resolution or raise max_frame_bytes`,
        );
      }
      const args = ['-f', 'v4l2'];
      if (input.input_format) args.push('-input_format', input.input_format);
      if (input.width !== undefined && input.height !== undefined) args.push('-video_size', `${input.width}x${input.height}`);
      if (input.framerate !== undefined) args.push('-framerate', String(input.framerate));
      return [...args, '-i', input.device];
    }
    case 'rtsp':
      // -timeout: socket I/O timeout in microseconds (ffmpeg >= 5), connect included.
      return ['-rtsp_transport', input.transport, '-timeout', timeoutUs, '-i', secrets.url!];
    case 'http':
      if (input.mode === 'snapshot') {
        // image2 with loop re-opens (re-GETs) the URL for every frame; -re paces the GETs at
        // `fps`. pattern_type none: a % in the URL is not a sequence pattern. Minimal probing:
        // by default ffmpeg fetched ~20 snapshots at once and played those stale images for
        // 5 s. image2 opens the URL itself and takes no protocol timeout: the watchdog covers
        // a hanging GET. Measured: 2.4 (mjpeg) / 3.2 (raw) ms of ffmpeg CPU per 640x480
        // snapshot, decode included, so polling with fetch() in the daemon (whose GET alone
        // cost several ms, before sharp's 3 ms decode) would gain nothing.
        return [
          '-analyzeduration', '0', '-probesize', '32',
          '-re', '-f', 'image2', '-pattern_type', 'none', '-loop', '1', '-framerate', String(config.fps), '-c:v', 'mjpeg',
          '-i', secrets.url!,
        ];
      }
      // The stream carries no timestamps (ffmpeg would assume 25 fps): arrival time is what
      // -r must limit. Format probed: multipart (mpjpeg) or bare concatenated JPEG both work.
      return ['-use_wallclock_as_timestamps', '1', '-rw_timeout', timeoutUs, '-i', secrets.url!];
    case 'file':
      return ['-re', ...(input.loop ? ['-stream_loop', '-1'] : []), '-i', input.path];
    case 'lavfi':
      // lavfi generates as fast as it is read; -re makes it a real-time camera.
      return ['-re', '-f', 'lavfi', '-i', input.graph];
  }
}

export function describeInput(input: FfmpegInputConfig): string {
  switch (input.kind) {
    case 'v4l2':
      return input.device;
    case 'rtsp':
    case 'http':
      return input.url.replace(/^([a-z][a-z0-9+.-]*:\/\/)(?:[^/?#@]*@)?([^?#]*).*$/i, '$1$2');
    case 'file':
      return basename(input.path);
    case 'lavfi':
      return 'lavfi';
  }
}

function redactor(secrets: Secrets): (text: string) => string {
  // Longest first, so a password is not half-replaced by a shorter secret inside it.
  const literals = [...new Set(secrets.literals)].sort((a, b) => b.length - a.length);
  return (text) => {
    let out = text.replace(URL_WITH_USERINFO, '$1***@');
    for (const s of literals) out = out.split(s).join('***');
    return out;
  };
}
