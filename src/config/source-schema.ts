import { z } from 'zod';
import { fps } from './primitives.js';

// Camera source schemas: one per source type, discriminated by `type`.

const DirectorySource = z
  .object({
    type: z.literal('directory'),
    path: z.string().min(1),
    fps: fps.default(1),
    loop: z.boolean().default(false),
    realtime: z
      .boolean()
      .default(false)
      .describe('false: wait for each frame to be taken (no drops); true: emit at fps like a live camera'),
    max_file_bytes: z
      .number()
      .int()
      .min(1024)
      .max(1024 * 1024 * 1024)
      .default(32 * 1024 * 1024)
      .describe('a larger file is skipped (logged, counted), never read'),
    read_timeout_ms: z
      .number()
      .int()
      .min(100)
      .max(600_000)
      .default(5_000)
      .describe('a file not read within this is skipped (a hung NFS mount); no other read starts until its fs call returns'),
  })
  .strict();

const WebcamSource = z
  .object({
    type: z.literal('webcam'),
    device: z
      .string()
      .regex(/^[A-Za-z0-9_./:-]+$/, 'a device path such as /dev/video0 (letters, digits, "_./:-")')
      .default('/dev/video0').describe('V4L2 device, or TEST for fswebcam\'s test image'),
    width: z.number().int().min(16).max(8192).default(640),
    height: z.number().int().min(16).max(8192).default(480),
    fps: fps.default(1),
    quality: z.number().int().min(1).max(100).default(90),
    skip: z.number().int().min(0).max(100).default(0).describe('frames fswebcam discards before the shot (auto exposure)'),
    timeout_ms: z.number().int().min(100).default(10_000).describe('a capture taking longer is killed and counted as an error'),
  })
  .strict();

const SyntheticSource = z
  .object({
    type: z.literal('synthetic'),
    width: z.number().int().min(16).max(4096).default(640),
    height: z.number().int().min(16).max(4096).default(480),
    fps: fps.default(2),
  })
  .strict()
  .describe('generated colour scenes; needs no hardware (the demo uses it)');

// Shared by the long-running process sources (ffmpeg, gst-launch).
const supervision = {
  stall_timeout_ms: z
    .number()
    .int()
    .min(500)
    .default(10_000)
    .describe('no frame for this long: the process is killed (SIGTERM, then SIGKILL) and restarted'),
  backoff_initial_ms: z.number().int().min(10).default(1_000).describe('first restart delay; doubles per failure'),
  backoff_max_ms: z.number().int().min(10).default(30_000).describe('cap of the restart delay (plus up to 20% jitter)'),
  max_frame_bytes: z
    .number()
    .int()
    .min(1024)
    .default(16 * 1024 * 1024)
    .describe('a frame larger than this is garbage: the stream is restarted'),
};

const FfmpegInput = z.discriminatedUnion('kind', [
  z
    .object({
      kind: z.literal('v4l2'),
      device: z.string().regex(/^\/dev\/[A-Za-z0-9_./-]+$/, 'a device path such as /dev/video0').default('/dev/video0'),
      input_format: z.string().regex(/^[a-z0-9_]+$/).optional().describe('e.g. mjpeg or yuyv422 (ffmpeg -input_format)'),
      width: z.number().int().min(16).max(8192).optional(),
      height: z.number().int().min(16).max(8192).optional(),
      framerate: z.number().positive().max(240).optional().describe('capture rate asked of the device'),
    })
    .strict(),
  z
    .object({
      kind: z.literal('rtsp'),
      url: z.string().regex(/^rtsps?:\/\/.+/, 'rtsp://host[:port]/path'),
      username: z.string().optional(),
      password: z.string().optional().describe('prefer password_env'),
      password_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).optional().describe('environment variable holding the password'),
      transport: z.enum(['tcp', 'udp']).default('tcp'),
    })
    .strict(),
  z
    .object({
      kind: z.literal('http'),
      url: z.string().regex(/^https?:\/\/.+/, 'http(s)://host[:port]/path'),
      mode: z.enum(['mjpeg', 'snapshot']).default('mjpeg').describe('multipart MJPEG stream, or a URL returning one JPEG per request'),
      username: z.string().optional(),
      password: z.string().optional(),
      password_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).optional(),
    })
    .strict(),
  z.object({ kind: z.literal('file'), path: z.string().min(1), loop: z.boolean().default(true) }).strict(),
  z
    .object({ kind: z.literal('lavfi'), graph: z.string().min(1).default('testsrc2=size=640x480:rate=10') })
    .strict()
    .describe('an ffmpeg test pattern (lavfi filter graph)'),
]);

const FfmpegSource = z
  .object({
    type: z.literal('ffmpeg'),
    input: FfmpegInput,
    fps: fps.default(5),
    output: z
      .enum(['auto', 'mjpeg', 'raw'])
      .default('auto')
      .describe('raw: ffmpeg scales and crops to the model input (no decode in the daemon); mjpeg: JPEG frames'),
    ...supervision,
  })
  .strict()
  .superRefine((f, ctx) => {
    const input = f.input;
    if (input.kind === 'v4l2') {
      if ((input.width === undefined) !== (input.height === undefined)) {
        ctx.addIssue({ code: 'custom', message: 'give both width and height, or neither', path: ['input', 'width'] });
      } else if (input.width !== undefined && input.height !== undefined && input.width * input.height * 3 > f.max_frame_bytes) {
        ctx.addIssue({
          code: 'custom',
          message: `${input.width}x${input.height} RGB frames are ${input.width * input.height * 3} bytes, more than max_frame_bytes (${f.max_frame_bytes})`,
          path: ['input', 'width'],
        });
      }
    }
    if (input.kind === 'rtsp' || input.kind === 'http') {
      if (input.password !== undefined && input.password_env !== undefined) {
        ctx.addIssue({ code: 'custom', message: 'give password or password_env, not both', path: ['input', 'password'] });
      }
      if ((input.password !== undefined || input.password_env !== undefined) && input.username === undefined) {
        ctx.addIssue({ code: 'custom', message: 'a password needs a username', path: ['input', 'username'] });
      }
    }
  });

const GstreamerSource = z
  .object({
    type: z.literal('gstreamer'),
    pipeline: z.string().min(1).describe('gst-launch-1.0 pipeline ending in "fdsink" (fd=1)'),
    format: z.enum(['mjpeg', 'raw']).default('mjpeg').describe('what reaches fdsink: JPEG frames (jpegenc) or RGB (video/x-raw,format=RGB)'),
    width: z.number().int().min(16).max(8192).optional().describe('raw only: frame width'),
    height: z.number().int().min(16).max(8192).optional().describe('raw only: frame height'),
    fps: fps.default(5),
    ...supervision,
  })
  .strict()
  .refine((g) => g.format !== 'raw' || (g.width !== undefined && g.height !== undefined), {
    message: 'format raw needs width and height',
    path: ['width'],
  })
  .refine((g) => g.format !== 'raw' || (g.width ?? 0) * (g.height ?? 0) * 3 <= g.max_frame_bytes, {
    message: 'format raw: width x height x 3 is more than max_frame_bytes',
    path: ['width'],
  });

export const SourceSchema = z.discriminatedUnion('type', [
  DirectorySource,
  WebcamSource,
  SyntheticSource,
  FfmpegSource,
  GstreamerSource,
]);
export type SourceConfig = z.infer<typeof SourceSchema>;
export type DirectorySourceConfig = z.infer<typeof DirectorySource>;
export type WebcamSourceConfig = z.infer<typeof WebcamSource>;
export type SyntheticSourceConfig = z.infer<typeof SyntheticSource>;
export type FfmpegSourceConfig = z.infer<typeof FfmpegSource>;
export type FfmpegInputConfig = z.infer<typeof FfmpegInput>;
export type GstreamerSourceConfig = z.infer<typeof GstreamerSource>;
