import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { REPO } from '../helpers/cli.js';

/** ../shared beside the repo (or $EDGE_CLASSIFIER_SHARED): real models, labels and images. */
export const SHARED = resolve(process.env.EDGE_CLASSIFIER_SHARED ?? join(REPO, '..', 'shared'));

export function requireShared(): void {
  if (!existsSync(join(SHARED, 'models'))) {
    throw new Error(`npm run test:real needs the shared test data at ${SHARED} (set EDGE_CLASSIFIER_SHARED to move it)`);
  }
}

export const sharedPath = (...parts: string[]): string => join(SHARED, ...parts);

/** Ground truth: file name -> accepted class indices (photos.tsv / imagenet-50.tsv). */
export function groundTruth(tsv: string): Map<string, Set<number>> {
  const out = new Map<string, Set<number>>();
  for (const line of readFileSync(sharedPath('images', tsv), 'utf8').split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const [file, indices] = line.split('\t');
    if (file && indices) out.set(file, new Set(indices.split(',').map(Number)));
  }
  return out;
}
