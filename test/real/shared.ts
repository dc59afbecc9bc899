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

export type ImageSet = 'photos' | 'imagenet-50';

/** One line of `classify` output (with --top-k N). */
export interface ClassifyLine {
  file: string;
  top: { index: number; label: string; score: number }[];
  inference_ms?: number;
}

/** `classify` arguments for a shared model on a shared image set. */
export function classifyArgs(model: string, preset: string, set: ImageSet, topK = 5): string[] {
  return [
    'classify',
    '--model', sharedPath('models', model),
    '--labels', sharedPath('labels', 'synset.txt'),
    '--preset', preset,
    '--providers', 'cpu',
    '--top-k', String(topK),
    sharedPath('images', set),
  ];
}

export interface Scored {
  correct: number;
  total: number;
  /** `file: predicted label` for each wrong top-1. */
  misses: string[];
  lines: ClassifyLine[];
  truth: Map<string, Set<number>>;
}

/** Top-1 of `classify` output against the set's ground truth. */
export function scoreClassify(stdout: string, set: ImageSet): Scored {
  const truth = groundTruth(`${set}.tsv`);
  const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as ClassifyLine);
  const misses = lines.filter((l) => !truth.get(l.file)?.has(l.top[0]!.index)).map((l) => `${l.file}: ${l.top[0]?.label}`);
  return { correct: lines.length - misses.length, total: lines.length, misses, lines, truth };
}
