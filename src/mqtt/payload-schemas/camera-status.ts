import { z } from 'zod';
import { count, nonEmpty, payloadMeta, timestamp } from './common.js';

export const CameraStatusSchema = z
  .object({
    v: z.literal(1),
    device: nonEmpty,
    camera: nonEmpty,
    state: z.enum(['online', 'offline', 'disabled']).describe('disabled: off in the config, or paused'),
    paused: z.boolean().describe('paused with the pause command'),
    since: timestamp.describe('when this state began'),
    last_error: z.string().nullable().describe('the most recent capture error (credentials redacted)'),
    ended: z.boolean().describe('a replay source (directory without loop) that has finished'),
    fps: z.number().min(0).describe('frames captured per second over the last 10 s'),
    reconnects_last_hour: count,
    stalls_last_hour: count,
    frames: z
      .object({
        captured: count,
        classified: count,
        dropped: count.describe('replaced while inference was busy'),
        decode_errors: count,
        capture_errors: count,
        skipped_files: count.describe(
          'files a directory source refused: not a regular file, over max_file_bytes, or not read within read_timeout_ms',
        ),
      })
      .strict(),
  })
  .strict()
  .meta(
    payloadMeta(
      'camera-status.v1',
      'Camera status (topic <base>/<device>/<camera>/status, retained)',
      'Published on every change of state (and a new error while offline); republished on every reconnect.',
    ),
  );
