import { z } from 'zod';
import { payloadMeta, timestamp } from './common.js';

export const LabelEventSchema = z
  .object({
    v: z.literal(1),
    camera: z.string(),
    label: z.string().describe('the label as in the labels file'),
    state: z.enum(['ON', 'OFF']),
    score: z.number().min(0).max(1).describe("the label's probability in the frame that switched the state"),
    ts: timestamp,
  })
  .strict()
  .meta(payloadMeta('label-event.v1', 'Watched label (topic <base>/<device>/<camera>/label/<label-slug>, retained)'));
