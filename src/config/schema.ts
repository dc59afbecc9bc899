import { z } from 'zod';
import { hostname } from 'node:os';

// The single source of truth for configuration: types come from z.infer, the JSON Schema
// (`edge-classifier config schema`) from z.toJSONSchema.

const slug = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]*$/i, 'letters, digits, "-" and "_" only (it is used in MQTT topics)');

const fps = z.number().positive().max(120);
const triple = z.tuple([z.number(), z.number(), z.number()]);

export const PreprocessSchema = z
  .object({
    size: z.number().int().min(8).max(4096).describe('side of the square center crop fed to the model'),
    resize: z.number().int().min(8).max(8192).describe('the short side is resized to this before cropping'),
    scale: z.number().positive().describe('pixel (0-255) multiplier applied before mean/std, e.g. 1/255'),
    mean: triple.describe('per-channel mean, in the model channel order'),
    std: triple.describe('per-channel std, in the model channel order'),
    channel_order: z.enum(['rgb', 'bgr']),
    layout: z.enum(['nchw', 'nhwc']),
    kernel: z.enum(['nearest', 'linear', 'cubic', 'mitchell', 'lanczos2', 'lanczos3']),
  })
  .strict();
export type PreprocessSpec = z.infer<typeof PreprocessSchema>;

export const PresetName = z.enum(['imagenet', 'caffe-bgr']);
export type PresetName = z.infer<typeof PresetName>;

export const ExecutionProvider = z.enum(['tensorrt', 'cuda', 'cpu']);
export type ExecutionProvider = z.infer<typeof ExecutionProvider>;

export const ModelSchema = z
  .object({
    path: z.string().min(1).describe('ONNX model file; relative paths resolve against the working directory'),
    labels: z.string().min(1).describe('synset.txt style ("n02123045 tabby, tabby cat") or one name per line'),
    name: z.string().min(1).optional().describe('default: the file name without .onnx'),
    version: z.string().min(1).optional().describe('default: the first 12 hex digits of the sha256'),
    preset: PresetName.default('imagenet'),
    preprocess: PreprocessSchema.partial().optional().describe('overrides single fields of the preset'),
    output: z
      .enum(['auto', 'logits', 'probabilities'])
      .default('auto')
      .describe('auto: softmax unless the output already is a probability distribution'),
    execution_providers: z.array(ExecutionProvider).min(1).default(['tensorrt', 'cuda', 'cpu']),
    intra_op_threads: z.number().int().min(0).max(256).default(0).describe('0: onnxruntime picks (one per core)'),
    device_id: z.number().int().min(0).default(0).describe('GPU index for cuda/tensorrt'),
  })
  .strict();

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

export const CameraSchema = z
  .object({
    id: slug,
    enabled: z.boolean().default(true),
    source: SourceSchema,
  })
  .strict();
export type CameraConfig = z.infer<typeof CameraSchema>;

export const MqttSchema = z
  .object({
    url: z
      .string()
      .regex(/^(embedded|(mqtts?|wss?|tcp):\/\/.+)$/, 'mqtt://host:port, mqtts://..., ws(s)://... or "embedded"')
      .default('embedded'),
    base_topic: z.string().min(1).regex(/^[^#+]+$/, 'no MQTT wildcards').default('edge-classifier'),
    client_id: z.string().min(1).optional().describe('default: edge-classifier-<device_id>'),
    username: z.string().optional(),
    password: z.string().optional().describe('prefer password_file or EDGE_CLASSIFIER__MQTT__PASSWORD'),
    password_file: z.string().min(1).optional().describe('file holding the password (e.g. a systemd credential)'),
    tls: z
      .object({
        ca: z.string().min(1).optional().describe('CA certificate file (PEM) to verify the broker'),
        cert: z.string().min(1).optional().describe('client certificate file (PEM)'),
        key: z.string().min(1).optional().describe('client private key file (PEM)'),
        reject_unauthorized: z.boolean().default(true),
      })
      .strict()
      .optional()
      .describe('used with mqtts:// or wss://'),
    protocol_version: z
      .union([z.literal(4), z.literal(5)])
      .optional()
      .describe('5 (MQTT v5: message expiry, content type) for external brokers, 4 (3.1.1) for the embedded one'),
    reconnect_max_ms: z.number().int().min(500).default(30_000).describe('reconnect backoff cap (starts at 1 s, with jitter)'),
    qos: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(1),
    keepalive: z.number().int().min(5).max(3600).default(30),
    queue: z
      .object({
        max_messages: z
          .number()
          .int()
          .min(1)
          .default(10_000)
          .describe('QoS 1 predictions and label events held while the broker is unreachable; beyond it the oldest predictions are dropped first (counted in stats)'),
        disk: z.boolean().default(false).describe('also keep the queue in state_dir/mqtt-queue.log, so a daemon restart loses nothing'),
        disk_max_bytes: z.number().int().min(65_536).default(64 * 1024 * 1024),
        fsync: z.enum(['always', 'interval']).default('interval').describe('interval: fdatasync at most every 100 ms (kind to SD cards)'),
        drain_delay_ms: z
          .number()
          .int()
          .min(0)
          .default(1_000)
          .describe('after a reconnect, wait this long before sending the backlog, so subscribers reconnecting at the same time get it'),
      })
      .strict()
      .default(() => ({ max_messages: 10_000, disk: false, disk_max_bytes: 64 * 1024 * 1024, fsync: 'interval' as const, drain_delay_ms: 1_000 })),
    embedded: z
      .object({ host: z.string().default('127.0.0.1'), port: z.number().int().min(0).max(65535).default(1883) })
      .strict()
      .default({ host: '127.0.0.1', port: 1883 })
      .describe('the in-process broker used when url is "embedded"'),
  })
  .strict();
export type MqttConfig = z.infer<typeof MqttSchema>;

export const OnlyOnChangeSchema = z
  .object({
    hysteresis: z.number().min(0).max(1).default(0.1).describe('publish when the top-1 score moves by more than this'),
    heartbeat: z.number().positive().default(60).describe('seconds: publish at least this often anyway'),
  })
  .strict();

/** Publish fields without defaults: the runtime `set` command patches with these. */
export const PublishFields = {
  top_k: z.number().int().min(1).max(100),
  min_score: z.number().min(0).max(1).describe('labels below this score are left out of "top"'),
  only_on_change: z
    .union([z.literal(false), OnlyOnChangeSchema])
    .describe('false: every frame; otherwise on top-1 change, score move beyond hysteresis, or heartbeat'),
};

export const PublishSchema = z
  .object({
    top_k: PublishFields.top_k.default(5),
    min_score: PublishFields.min_score.default(0),
    only_on_change: PublishFields.only_on_change.default(false),
    expiry: z.number().int().min(0).default(0).describe('MQTT v5 message expiry of predictions, seconds; 0: none'),
  })
  .strict();
export type PublishConfig = z.infer<typeof PublishSchema>;

export const WatchSchema = z
  .object({
    label: z.string().min(1).describe('exactly as in the labels file, e.g. "tabby, tabby cat"'),
    name: z.string().min(1).optional().describe('topic segment / entity name; default: slug of the label'),
    min_score: z.number().min(0).max(1).default(0.5),
    frames: z.number().int().min(1).max(1000).default(3).describe('consecutive frames to switch ON, and OFF'),
    cameras: z.array(slug).min(1).optional().describe('default: every camera'),
  })
  .strict();

export const HomeAssistantSchema = z
  .object({
    enabled: z.boolean().default(false),
    discovery_prefix: z.string().min(1).default('homeassistant'),
    birth_topic: z.string().min(1).default('homeassistant/status'),
  })
  .strict();

export const CommandsSchema = z
  .object({
    enabled: z.boolean().default(true),
    max_payload_bytes: z.number().int().min(64).max(1_048_576).default(16_384),
  })
  .strict();

export const ConfigSchema = z
  .object({
    device_id: slug.default(() => hostname().replace(/[^a-z0-9_-]/gi, '-')),
    model: ModelSchema,
    cameras: z
      .array(CameraSchema)
      .min(1)
      .refine((cams) => new Set(cams.map((c) => c.id)).size === cams.length, 'camera ids must be unique'),
    mqtt: MqttSchema.default(() => MqttSchema.parse({})),
    publish: PublishSchema.default(() => PublishSchema.parse({})),
    watch: z.array(WatchSchema).default([]).describe('labels whose presence is published as ON/OFF events'),
    homeassistant: HomeAssistantSchema.default(() => HomeAssistantSchema.parse({})),
    commands: CommandsSchema.default(() => CommandsSchema.parse({})),
    stats_interval: z
      .number()
      .min(0)
      .default(60)
      .describe('seconds between B/D/stats messages and "stats" log lines; 0: never'),
    state_dir: z
      .string()
      .min(1)
      .default('/var/lib/edge-classifier')
      .describe('persistent state: runtime settings changed over MQTT, the offline queue, installed models'),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info') })
      .strict()
      .default({ level: 'info' }),
    shutdown_timeout_ms: z.number().int().min(100).max(60_000).default(4_000),
  })
  .strict();

export type Config = z.infer<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;
