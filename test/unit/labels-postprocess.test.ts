import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadLabels, parseLabels } from '../../src/vision/labels.js';
import { looksLikeProbabilities, nonFinite, softmax, toProbabilities, topK } from '../../src/vision/postprocess.js';
import { fromFloat16Array, toFloat16Array } from '../../src/vision/float16.js';

describe('parseLabels', () => {
  it('synset lines give the text after the synset id', () => {
    const text = 'n01440764 tench, Tinca tinca\nn01443537\tgoldfish, Carassius auratus\nn02123045   tabby, tabby cat\n';
    expect(parseLabels(text)).toEqual(['tench, Tinca tinca', 'goldfish, Carassius auratus', 'tabby, tabby cat']);
  });

  it('plain lines are taken as they are (trimmed)', () => {
    expect(parseLabels('cat\n  dog  \nhot dog\nn123 not a synset\n')).toEqual(['cat', 'dog', 'hot dog', 'n123 not a synset']);
  });

  it('Windows line endings and a BOM leave no stray characters', () => {
    const labels = parseLabels('\uFEFFn01440764 tench\r\nn01443537 goldfish\r\nshark\r\n');
    expect(labels).toEqual(['tench', 'goldfish', 'shark']);
    expect(labels.join('')).not.toMatch(/[\r\uFEFF]/);
  });

  it('trailing blank lines are dropped, inner blank lines keep their index', () => {
    expect(parseLabels('zero\n\ntwo\n   \nfour\n\n\n  \r\n')).toEqual(['zero', 'class 1', 'two', 'class 3', 'four']);
  });

  it('an empty or blank text has no labels', () => {
    expect(parseLabels('')).toEqual([]);
    expect(parseLabels('\n\r\n  \n')).toEqual([]);
  });
});

describe('loadLabels', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'labels-test-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a labels file', async () => {
    const path = join(dir, 'synset.txt');
    await writeFile(path, '\uFEFFn01440764 tench\r\nn01443537 goldfish\r\n');
    expect(await loadLabels(path)).toEqual(['tench', 'goldfish']);
  });

  it('a missing file gives an error naming the path', async () => {
    const path = join(dir, 'nope', 'labels.txt');
    await expect(loadLabels(path)).rejects.toThrow(`cannot read labels file ${path}`);
  });

  it('an empty file is an error naming the path', async () => {
    const path = join(dir, 'empty.txt');
    await writeFile(path, '\n\n');
    await expect(loadLabels(path)).rejects.toThrow(`labels file ${path} is empty`);
  });
});

const sum = (v: ArrayLike<number>): number => Array.from(v).reduce((a, b) => a + b, 0);

describe('softmax', () => {
  it('sums to 1 and keeps the order', () => {
    const p = softmax([1, 2, 3, 0.5]);
    expect(sum(p)).toBeCloseTo(1, 6);
    expect(p[2]).toBeGreaterThan(p[1]!);
    expect(p[1]).toBeGreaterThan(p[0]!);
    expect(p[0]).toBeCloseTo(Math.exp(1) / (Math.exp(1) + Math.exp(2) + Math.exp(3) + Math.exp(0.5)), 6);
  });

  it('is stable for large logits', () => {
    const p = softmax([1000, 1001]);
    expect([...p].every(Number.isFinite)).toBe(true);
    expect(p[0]).toBeCloseTo(1 / (1 + Math.E), 6);
    expect(p[1]).toBeCloseTo(Math.E / (1 + Math.E), 6);
    const q = softmax([-1000, -1001, -999]);
    expect(sum(q)).toBeCloseTo(1, 6);
  });
});

describe('looksLikeProbabilities / toProbabilities', () => {
  // 1000 logits, deterministic.
  const logits = Array.from({ length: 1000 }, (_, i) => Math.sin(i * 12.9898) * 8);
  const probs = softmax(logits);

  it('recognises a softmax output, also after a round trip through fp16', () => {
    expect(looksLikeProbabilities(probs)).toBe(true);
    const fp16 = fromFloat16Array(toFloat16Array(probs));
    expect(fp16).not.toEqual(probs); // the rounding really changed the values
    expect(looksLikeProbabilities(fp16)).toBe(true);
  });

  it('rejects logits, negative values and sums that are not 1', () => {
    expect(looksLikeProbabilities(logits)).toBe(false);
    expect(looksLikeProbabilities([0.5, 0.6, -0.1])).toBe(false); // sums to 1 but has a negative
    expect(looksLikeProbabilities([0.2, 0.2, 0.2])).toBe(false);
    expect(looksLikeProbabilities([0.5, 0.52])).toBe(false);
    expect(looksLikeProbabilities([0.3, NaN, 0.7])).toBe(false);
    expect(looksLikeProbabilities([])).toBe(false);
  });

  it("'auto' does not softmax probabilities twice, but does softmax logits", () => {
    expect(toProbabilities(probs, 'auto')).toBe(probs);
    const fromLogits = toProbabilities(logits, 'auto');
    expect(Array.from(fromLogits)).toEqual(Array.from(probs));
  });

  it("'logits' always applies softmax, 'probabilities' never does", () => {
    const p = [0.1, 0.2, 0.7];
    expect(Array.from(toProbabilities(p, 'logits'))).toEqual(Array.from(softmax(p)));
    expect(toProbabilities(logits, 'probabilities')).toBe(logits);
  });
});

describe('topK', () => {
  const labels = ['zero', 'one', 'two', 'three', 'four'];

  it('returns the k best, best first, with labels attached', () => {
    expect(topK([0.1, 0.5, 0.05, 0.3, 0.05], 3, labels)).toEqual([
      { index: 1, label: 'one', score: 0.5 },
      { index: 3, label: 'three', score: 0.3 },
      { index: 0, label: 'zero', score: 0.1 },
    ]);
  });

  it('k larger than the vector returns everything, sorted', () => {
    const top = topK([0.2, 0.1, 0.7], 10, labels);
    expect(top.map((s) => s.index)).toEqual([2, 0, 1]);
  });

  it('nonFinite counts NaN and ±Infinity and names the first', () => {
    expect(nonFinite([0.1, 0.9])).toEqual({ count: 0 });
    expect(nonFinite([1, Infinity, NaN, -Infinity])).toEqual({ count: 3, first: { index: 1, value: Infinity } });
    expect(nonFinite(new Float32Array([NaN]))).toEqual({ count: 1, first: { index: 0, value: NaN } });
  });

  it('skips NaN scores', () => {
    const top = topK([NaN, 0.4, NaN, 0.6], 4, labels);
    expect(top.map((s) => s.index)).toEqual([3, 1]);
    expect(topK([NaN, 0.1], 1, labels)).toEqual([{ index: 1, label: 'one', score: 0.1 }]);
  });

  it('ties keep the lower index first, also at the cut-off', () => {
    expect(topK([0.2, 0.3, 0.2, 0.3, 0.2], 5, labels).map((s) => s.index)).toEqual([1, 3, 0, 2, 4]);
    expect(topK([0.2, 0.3, 0.2, 0.3, 0.2], 3, labels).map((s) => s.index)).toEqual([1, 3, 0]);
  });

  it('works on logits (negative scores) and long vectors', () => {
    const scores = Float32Array.from({ length: 1000 }, (_, i) => -1000 + ((i * 7919) % 1000));
    const top = topK(scores, 5, []);
    expect(top.map((s) => s.score)).toEqual([-1, -2, -3, -4, -5]);
    expect(top[0]).toEqual({ index: [...scores].indexOf(-1), label: `class ${[...scores].indexOf(-1)}`, score: -1 });
  });

  it('labels missing for an index become "class N"; scores are rounded to 6 digits', () => {
    expect(topK([0.1234567891, 0.9], 2, ['only'])).toEqual([
      { index: 1, label: 'class 1', score: 0.9 },
      { index: 0, label: 'only', score: 0.123457 },
    ]);
  });

  it('k = 0 gives nothing', () => {
    expect(topK([0.5, 0.5], 0, labels)).toEqual([]);
  });
});
