import { z } from 'zod';

// Building blocks shared by the payload schemas. Only types and the generated JSON Schemas come
// from these: the daemon builds its payloads itself and never parses them on the way out.

/** An ISO 8601 UTC time as Date#toISOString writes it. */
export const timestamp = z.iso.datetime();

/** A counter or a gauge of things: a whole number, never negative. */
export const count = z.number().int().min(0);

export const nonEmpty = z.string().min(1);

export const ModelRefSchema = z
  .object({
    name: z.string(),
    version: z.string(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
  })
  .strict();

/** The JSON Schema header of a published payload: its id (with its `v`), title and description. */
export function payloadMeta(id: string, title: string, description?: string): { $id: string; title: string; description?: string } {
  return { $id: `edge-classifier/${id}`, title, ...(description ? { description } : {}) };
}
