import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { runCli } from './cli.js';

/**
 * Publishes `dir/<model>` (labels `dir/labels.txt`, key `keys/release-key.pem`) as `version`
 * with the built CLI, and puts it where the test's nginx serves `/stable/` (`dir/www/stable`),
 * replacing the release served before. No validation images: publishing would run the model.
 */
export async function serveRelease(dir: string, keys: string, version: string, model: string): Promise<void> {
  const out = join(dir, `rel-${version}`);
  const r = await runCli(['release', 'publish', '--model', join(dir, model), '--labels', join(dir, 'labels.txt'), '--preset', 'imagenet',
    '--version', version, '--key', join(keys, 'release-key.pem'), '--out', out]);
  expect(r.code, r.stderr).toBe(0);
  rmSync(join(dir, 'www', 'stable'), { recursive: true, force: true });
  cpSync(out, join(dir, 'www', 'stable'), { recursive: true });
}
