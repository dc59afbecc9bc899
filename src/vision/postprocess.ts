export interface Scored {
  index: number;
  label: string;
  score: number;
}

export type OutputKind = 'auto' | 'logits' | 'probabilities';

/** True when the vector already is a probability distribution (so softmax must not be applied twice). */
export function looksLikeProbabilities(v: ArrayLike<number>): boolean {
  let sum = 0;
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    if (!(x >= 0 && x <= 1)) return false;
    sum += x;
  }
  // fp16 outputs (SqueezeNet) sum to 1 only within ~1e-3.
  return Math.abs(sum - 1) < 5e-3;
}

/** How many values are NaN or ±Infinity, and the first such one (index and value). */
export function nonFinite(v: ArrayLike<number>): { count: number; first?: { index: number; value: number } } {
  let count = 0;
  let first: { index: number; value: number } | undefined;
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    if (Number.isFinite(x)) continue;
    count++;
    first ??= { index: i, value: x };
  }
  return first ? { count, first } : { count };
}

export function softmax(v: ArrayLike<number>): Float32Array {
  let max = -Infinity;
  for (let i = 0; i < v.length; i++) max = Math.max(max, v[i]!);
  const out = new Float32Array(v.length);
  let sum = 0;
  for (let i = 0; i < v.length; i++) {
    const e = Math.exp(v[i]! - max);
    out[i] = e;
    sum += e;
  }
  for (let i = 0; i < out.length; i++) out[i] = out[i]! / sum;
  return out;
}

export function toProbabilities(v: ArrayLike<number>, kind: OutputKind): ArrayLike<number> {
  if (kind === 'probabilities') return v;
  if (kind === 'auto' && looksLikeProbabilities(v)) return v;
  return softmax(v);
}

/** The k highest scores, best first; ties keep the lower index first. */
export function topK(scores: ArrayLike<number>, k: number, labels: readonly string[]): Scored[] {
  const best: number[] = [];
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i]!;
    if (Number.isNaN(s)) continue;
    if (best.length === k && s <= scores[best[k - 1]!]!) continue;
    let pos = best.length;
    while (pos > 0 && scores[best[pos - 1]!]! < s) pos--;
    best.splice(pos, 0, i);
    if (best.length > k) best.pop();
  }
  return best.map((index) => ({ index, label: labels[index] ?? `class ${index}`, score: round(scores[index]!, 6) }));
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
