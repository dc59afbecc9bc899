import { z } from 'zod';
import { hostname } from 'node:os';

// The single source of truth for configuration: types come from z.infer, the JSON Schema
// (`edge-classifier config schema`) from z.toJSONSchema. Keys a reload applies without a restart
// carry .meta(RELOAD_AT_RUNTIME) (reload-marks.ts); config-diff.ts reads them from here.

import { slug } from './primitives.js';
import { SourceSchema } from './source-schema.js';
import { MqttSchema, PublishSchema, WatchSchema, HomeAssistantSchema } from './mqtt-schema.js';
import { CommandsSchema } from './commands-schema.js';
import { UpdatesSchema } from './updates-schema.js';
import { HttpSchema } from './http-schema.js';
import { RELOAD_AT_RUNTIME } from './reload-marks.js';

export * from './source-schema.js';
export * from './mqtt-schema.js';
export * from './updates-schema.js';
export * from './http-schema.js';
export * from './commands-schema.js';

// Bounds that keep (pixel * scale - mean) / std finite and meaningful for any real model: a std
// of 0 divides by zero, and a scale like 1e308 overflows float32, and either turns every
// output into NaN/Infinity (empty predictions). Real values: scale 1/255 to 1 (2/255, 1/127.5),
// mean within 0-255, std 0.2 (0-1 inputs) to ~60 (0-255 inputs). Zod refuses NaN and Infinity
// (YAML's .nan, .inf) itself.
const SCALE = { min: 1e-6, max: 1e3 } as const;
const MEAN = { min: -1e4, max: 1e4 } as const;
const STD = { min: 1e-3, max: 1e4 } as const;
const meanValue = z.number().min(MEAN.min).max(MEAN.max);
const stdValue = z
  .number()
  .min(STD.min, `must be at least ${STD.min} (a std of 0 divides by zero: every input, hence every output, becomes NaN or Infinity)`)
  .max(STD.max);
const triple = <T extends z.ZodNumber>(v: T) => z.tuple([v, v, v]);

export const PreprocessSchema = z
  .object({
    size: z.number().int().min(8).max(4096).describe('side of the square center crop fed to the model'),
    resize: z.number().int().min(8).max(8192).describe('the short side is resized to this before cropping'),
    scale: z
      .number()
      .min(SCALE.min, `must be at least ${SCALE.min} (a pixel multiplier, e.g. 1/255 or 1)`)
      .max(SCALE.max, `must be at most ${SCALE.max} (a pixel multiplier, e.g. 1/255 or 1; larger ones overflow the model input)`)
      .describe('pixel (0-255) multiplier applied before mean/std, e.g. 1/255'),
    mean: triple(meanValue).describe('per-channel mean, in the model channel order'),
    std: triple(stdValue).describe(`per-channel std, in the model channel order (${STD.min} to ${STD.max}: never 0)`),
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
    path: z
      .string()
      .min(1)
      .optional()
      .describe('ONNX model file (relative: to the working directory); optional with updates.manifest_url, which then installs one'),
    labels: z.string().min(1).optional().describe('synset.txt style ("n02123045 tabby, tabby cat") or one name per line'),
    name: z.string().min(1).optional().describe('default: the file name without .onnx'),
    version: z.string().min(1).optional().describe('default: the first 12 hex digits of the sha256'),
    preset: PresetName.default('imagenet'),
    preprocess: PreprocessSchema.partial().optional().describe('overrides single fields of the preset'),
    output: z
      .enum(['auto', 'logits', 'probabilities'])
      .default('auto')
      .describe('auto: softmax unless the output already is a probability distribution'),
    execution_providers: z.array(ExecutionProvider).min(1).default(['tensorrt', 'cuda', 'cpu']),
    intra_op_threads: z
      .number()
      .int()
      .min(0)
      .max(256)
      .default(0)
      .describe('onnxruntime threads per inference; 0: one per CPU less one (at least 1), leaving a core for decoding (see docs/performance.md)'),
    intra_op_spinning: z
      .boolean()
      .default(false)
      .describe("onnxruntime's session.intra_op.allow_spinning: idle intra-op threads busy-wait for work; faster back-to-back runs, but burns CPU between frames (see docs/performance.md)"),
    device_id: z.number().int().min(0).default(0).describe('GPU index for cuda/tensorrt'),
  })
  .strict();

export const CameraSchema = z
  .object({
    id: slug,
    enabled: z.boolean().default(true),
    source: SourceSchema,
  })
  .strict();
export type CameraConfig = z.infer<typeof CameraSchema>;

export const ConfigSchema = z
  .object({
    device_id: slug.default(() => hostname().replace(/[^a-z0-9_-]/gi, '-')),
    model: ModelSchema,
    cameras: z
      .array(CameraSchema)
      .min(1)
      .refine((cams) => new Set(cams.map((c) => c.id)).size === cams.length, 'camera ids must be unique')
      .meta(RELOAD_AT_RUNTIME),
    mqtt: MqttSchema.default(() => MqttSchema.parse({})),
    publish: PublishSchema.default(() => PublishSchema.parse({})).meta(RELOAD_AT_RUNTIME),
    watch: z.array(WatchSchema).default([]).describe('labels whose presence is published as ON/OFF events').meta(RELOAD_AT_RUNTIME),
    homeassistant: HomeAssistantSchema.default(() => HomeAssistantSchema.parse({})),
    commands: CommandsSchema.default(() => CommandsSchema.parse({})),
    updates: UpdatesSchema.default(() => UpdatesSchema.parse({})),
    http: HttpSchema.default(() => HttpSchema.parse({})),
    stats_interval: z
      .number()
      .min(0)
      .default(60)
      .describe('seconds between B/D/stats messages and "stats" log lines; 0: never')
      .meta(RELOAD_AT_RUNTIME),
    state_dir: z
      .string()
      .min(1)
      .default('/var/lib/edge-classifier')
      .describe('persistent state: runtime settings changed over MQTT, the offline queue, installed models'),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info').meta(RELOAD_AT_RUNTIME) })
      .strict()
      .default({ level: 'info' }),
    shutdown_timeout_ms: z.number().int().min(100).max(60_000).default(4_000).meta(RELOAD_AT_RUNTIME),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    // Without updates there is no other way to get a model.
    if (cfg.updates.manifest_url) return;
    if (!cfg.model.path) ctx.addIssue({ code: 'custom', path: ['model', 'path'], message: 'required (or set updates.manifest_url to install a model)' });
    if (!cfg.model.labels) ctx.addIssue({ code: 'custom', path: ['model', 'labels'], message: 'required (or set updates.manifest_url to install a model)' });
  });

export type Config = z.infer<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;
