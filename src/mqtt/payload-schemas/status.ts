import { z } from 'zod';
import { ExecutionProvider } from '../../config/schema.js';
import { ModelRefSchema, nonEmpty, payloadMeta, timestamp } from './common.js';

export const AvailabilityStateSchema = z.enum(['online', 'offline', 'stopped']);

export const StatusSchema = z
  .object({
    v: z.literal(1),
    state: AvailabilityStateSchema,
    device: nonEmpty,
    version: z.string().describe('daemon version'),
    ts: timestamp.optional(),
    model: ModelRefSchema.nullable().optional(),
    execution_provider: ExecutionProvider.nullable().optional(),
    cameras: z.array(z.string()).optional(),
  })
  .strict()
  .meta(
    payloadMeta(
      'status.v1',
      'Availability (topic <base>/<device>/status, retained)',
      'online on every (re)connect, offline as the MQTT last will, stopped on a clean shutdown. The last will is fixed at connect time, so it carries only v, state, device and version.',
    ),
  );
