import { z } from 'zod';
import { nonEmpty, payloadMeta, timestamp } from './common.js';

const keyPaths = z.array(nonEmpty);

export const ConfigReportSchema = z
  .object({
    v: z.literal(1),
    device: nonEmpty,
    ts: timestamp,
    file: nonEmpty.describe('the configuration file that was read'),
    result: z
      .enum(['applied', 'unchanged', 'invalid', 'failed'])
      .describe(
        'applied: valid, runtime changes applied (see needs_restart); unchanged: the file matches the running configuration; invalid: rejected (errors), nothing changed; failed: valid, but applying some keys failed (errors)',
      ),
    applied: keyPaths.describe('key paths changed and applied at runtime, e.g. publish.top_k, cameras[yard], watch[0].min_score'),
    needs_restart: keyPaths.describe(
      'key paths changed in the file that take effect only after a restart (they keep their running value until then)',
    ),
    overridden: keyPaths.describe(
      'publish keys changed in the file but still overridden by the `set` command (runtime.json takes precedence until `set` with reset: true)',
    ),
    cameras: z
      .object({
        added: keyPaths,
        removed: keyPaths,
        restarted: keyPaths.describe('cameras whose configuration changed'),
      })
      .strict(),
    errors: keyPaths.describe('why the file was rejected (each naming its key path), or which keys failed to apply'),
  })
  .strict()
  .meta(
    payloadMeta(
      'config-report.v1',
      'Configuration reload report (topic <base>/<device>/config, retained)',
      'Published after every reload (SIGHUP, `systemctl reload`). Cleared when the daemon starts, so a report is never older than the running process.',
    ),
  );
