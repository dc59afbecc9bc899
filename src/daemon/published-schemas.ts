import { z } from 'zod';
import { PredictionSchema } from '../mqtt/payload-schemas/prediction.js';
import { StatusSchema } from '../mqtt/payload-schemas/status.js';
import { CameraStatusSchema } from '../mqtt/payload-schemas/camera-status.js';
import { LabelEventSchema } from '../mqtt/payload-schemas/label-event.js';
import { ResponseSchema } from '../mqtt/payload-schemas/response.js';
import { ModelUpdateSchema } from '../mqtt/payload-schemas/model-update.js';
import { ConfigReportSchema } from '../mqtt/payload-schemas/config-report.js';
import { StatsSchema } from './stats-schema.js';

// Everything the daemon publishes, by the name of its docs/schemas/<name>.schema.json. Here,
// above mqtt, because the stats payload belongs to the daemon.

export const PUBLISHED_SCHEMAS = {
  prediction: PredictionSchema,
  status: StatusSchema,
  'camera-status': CameraStatusSchema,
  'label-event': LabelEventSchema,
  stats: StatsSchema,
  response: ResponseSchema,
  'model-update': ModelUpdateSchema,
  'config-report': ConfigReportSchema,
} as const;

/** A payload's JSON Schema as committed: header keys first, two-space indent, final newline. */
export function jsonSchemaText(schema: z.ZodType): string {
  // Output side: what is on the wire. Unrepresentable types throw rather than widen silently.
  const { $schema, $id, title, description, ...rest } = z.toJSONSchema(schema);
  return `${JSON.stringify({ $schema, $id, title, description, ...rest }, null, 2)}\n`;
}

/** The files of docs/schemas/, generated. */
export function publishedSchemaFiles(): { file: string; text: string }[] {
  return Object.entries(PUBLISHED_SCHEMAS).map(([name, schema]) => ({ file: `${name}.schema.json`, text: jsonSchemaText(schema) }));
}
