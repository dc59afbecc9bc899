import { readFile } from 'node:fs/promises';

const SYNSET_LINE = /^n\d{8}\s+(.+)$/;

/**
 * Label files: `synset.txt` style (`n02123045 tabby, tabby cat` -> `tabby, tabby cat`) or one
 * name per line. Line number = class index, so inner blank lines are kept (as "class N") and
 * only trailing blank lines are dropped.
 */
export function parseLabels(text: string): string[] {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  while (lines.length > 0 && (lines[lines.length - 1] ?? '').trim() === '') lines.pop();
  return lines.map((line, i) => {
    const trimmed = line.trim();
    const synset = SYNSET_LINE.exec(trimmed);
    if (synset?.[1]) return synset[1].trim();
    return trimmed === '' ? `class ${i}` : trimmed;
  });
}

/** The labels file cannot be read or is empty: a configuration problem (exit 78). */
export class LabelsFileError extends Error {
  override name = 'LabelsFileError';
}

export async function loadLabels(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new LabelsFileError(`cannot read labels file ${path}: ${(err as Error).message}`);
  }
  const labels = parseLabels(text);
  if (labels.length === 0) throw new LabelsFileError(`labels file ${path} is empty`);
  return labels;
}
