import { z } from 'zod';
import { count, ModelRefSchema, payloadMeta, timestamp } from '../mqtt/payload-schemas/common.js';

// The B/D/stats payload, beside the code that builds it (stats.ts): it gathers the daemon's
// parts (cameras, inference, MQTT), so it lives above them.

const CameraStatsSchema = z
  .object({
    state: z.enum(['starting', 'online', 'offline', 'disabled', 'ended']),
    fps: z.number().min(0),
    captured: count,
    classified: count,
    dropped: count,
    decode_errors: count,
    skipped_files: count.describe(
      'files a directory source refused: not a regular file, over max_file_bytes, or not read within read_timeout_ms',
    ),
    inference_errors: count.describe('failed inferences: the worker threw, or the output held NaN/Infinity'),
    reconnects_last_hour: count,
    stalls_last_hour: count,
  })
  .strict();

export const StatsSchema = z
  .object({
    v: z.literal(1),
    device: z.string(),
    ts: timestamp,
    uptime_s: count,
    cpu_percent: z.number().min(0).describe('of one core, since the previous stats'),
    memory: z.object({ rss_mb: z.number(), heap_used_mb: z.number() }).strict(),
    cameras: z.record(z.string(), CameraStatsSchema),
    inference_ms: z.object({ p50: z.number(), p95: z.number(), samples: z.number().int() }).strict(),
    mqtt: z.object({ connected: z.boolean(), queued: count, sent: count, dropped: count }).strict(),
    model: ModelRefSchema.nullable(),
  })
  .strict()
  .meta(payloadMeta('stats.v1', 'Health (topic <base>/<device>/stats, every stats_interval seconds)'));

export type StatsPayload = z.infer<typeof StatsSchema>;
