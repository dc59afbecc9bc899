import type { z } from 'zod';
import type { ModelRefSchema } from './payload-schemas/common.js';
import type { PredictionSchema } from './payload-schemas/prediction.js';
import type { AvailabilityStateSchema, StatusSchema } from './payload-schemas/status.js';
import type { CameraStatusSchema } from './payload-schemas/camera-status.js';
import type { ConfigReportSchema } from './payload-schemas/config-report.js';
import type { ModelUpdateSchema, UpdateStateSchema } from './payload-schemas/model-update.js';
import type { LabelEventSchema } from './payload-schemas/label-event.js';
import type { ResponseSchema } from './payload-schemas/response.js';

// The published payloads' types, inferred from their zod schemas (payload-schemas/), which also
// generate docs/schemas/*.json (`npm run schemas`); tests validate real messages against those.
// Bump `v` on any incompatible change.

export type ModelRef = z.infer<typeof ModelRefSchema>;
export type PredictionPayload = z.infer<typeof PredictionSchema>;
export type AvailabilityState = z.infer<typeof AvailabilityStateSchema>;
export type StatusPayload = z.infer<typeof StatusSchema>;
export type CameraStatusPayload = z.infer<typeof CameraStatusSchema>;
/** Retained B/D/config: the outcome of the last configuration reload (SIGHUP). */
export type ConfigReportPayload = z.infer<typeof ConfigReportSchema>;
export type UpdateState = z.infer<typeof UpdateStateSchema>;
/** Retained B/D/model: what is installed and what the updater is doing. */
export type ModelUpdatePayload = z.infer<typeof ModelUpdateSchema>;
export type LabelEventPayload = z.infer<typeof LabelEventSchema>;
export type ResponsePayload = z.infer<typeof ResponseSchema>;

export function ms(x: number): number {
  return Math.round(x * 100) / 100;
}
