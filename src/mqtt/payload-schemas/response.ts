import { z } from 'zod';
import { payloadMeta } from './common.js';

export const ResponseSchema = z
  .object({
    status: z.enum(['ok', 'error']),
    data: z.unknown().describe("the command's result; null on error"),
    error: z.string().nullable().describe('why the request failed; null when ok'),
    transaction: z.union([z.string(), z.number()]).nullable().describe('echoed from the request'),
  })
  .strict()
  .meta(payloadMeta('response.v1', 'Command response (topic <base>/<device>/response/<command>)'));
