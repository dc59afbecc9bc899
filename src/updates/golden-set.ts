import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ValidationImage } from './validator.js';

/**
 * The device's own golden set (updates.validation.golden_dir): images a person labelled on this
 * device, checked with every candidate on top of the release's images.
 */
/** Reads `dir/expected.tsv`: `file<TAB>index` per line, blank lines and `#` comments ignored. */
export async function readGoldenSet(dir: string): Promise<ValidationImage[]> {
  const tsv = join(dir, 'expected.tsv');
  const text = await readFile(tsv, 'utf8').catch((err: Error) => {
    throw new Error(`golden set: cannot read ${tsv}: ${err.message}`);
  });
  const images: ValidationImage[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '' || line.startsWith('#')) return;
    const [file, index, ...rest] = line.split('\t');
    if (!file || !index || rest.length > 0 || !/^\d+$/.test(index.trim())) {
      throw new Error(`golden set: ${tsv} line ${i + 1}: expected "file<TAB>label index", got "${line}"`);
    }
    images.push({ path: join(dir, file.trim()), expectedIndex: Number(index.trim()) });
  });
  return images;
}
