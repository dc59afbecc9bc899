import { z } from 'zod';
import { count, ModelRefSchema, nonEmpty, payloadMeta, timestamp } from './common.js';

const latency = z.number().min(0);

export const PredictionSchema = z
  .object({
    v: z.literal(1),
    device: nonEmpty,
    camera: nonEmpty,
    seq: z.number().int().min(1).describe('per-camera capture sequence number'),
    ts: timestamp.describe('capture time'),
    frame: z
      .object({
        source: z.string().describe('file name (directory source) or device'),
        width: z.number().int().min(1),
        height: z.number().int().min(1),
      })
      .strict(),
    model: ModelRefSchema,
    top: z
      .array(
        z
          .object({
            index: count,
            label: z.string(),
            score: z.number().min(0).max(1).describe('probability'),
          })
          .strict(),
      )
      .min(1),
    latency_ms: z
      .object({
        preprocess: latency,
        inference: latency,
        total: latency.describe('capture to publish'),
      })
      .strict(),
  })
  .strict()
  .meta(payloadMeta('prediction.v1', 'Prediction (topic <base>/<device>/<camera>/prediction)'));
