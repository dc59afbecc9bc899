import { z } from 'zod';
import { count, payloadMeta, timestamp } from './common.js';

export const UpdateStateSchema = z.enum(['idle', 'checking', 'downloading', 'validating', 'activating', 'probation', 'rolled-back', 'failed']);

export const ModelUpdateSchema = z
  .object({
    v: z.literal(1),
    device: z.string(),
    installed: z
      .object({
        version: z.string(),
        sha256: z.string().regex(/^[0-9a-f]{64}$/),
        since: timestamp.optional(),
      })
      .strict()
      .nullable(),
    state: UpdateStateSchema,
    target: z.string().nullable().optional().describe('the release being installed or last refused'),
    progress: z.object({ bytes: count, total: count }).strict().nullable(),
    last_error: z.string().nullable(),
    last_check: timestamp.nullable(),
    next_check: timestamp.nullable(),
    refused: z.array(z.object({ version: z.string(), reason: z.string() }).strict()).optional(),
    storage: z
      .object({
        pending: z.boolean().describe('the state on disk is behind the one in memory: a write waits for room'),
        failed_writes: z.number().int().min(1).describe('writes that failed for lack of space since the daemon started'),
        error: z.string().nullable().describe('the last failure; null once a write went through after it'),
      })
      .strict()
      .optional()
      .describe(
        'present once a write of the update state failed for lack of space (ENOSPC/EDQUOT); the state is kept in memory and the write retried until it goes through',
      ),
  })
  .strict()
  .meta(payloadMeta('model-update.v1', 'Model and update state (topic <base>/<device>/model, retained)'));
