import { z } from 'zod';

/** Ids used in MQTT topics (device, cameras, watch rule names). */
export const slug = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]*$/i, 'letters, digits, "-" and "_" only (it is used in MQTT topics)');

export const fps = z.number().positive().max(120);
