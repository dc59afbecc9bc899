import { describe, expect, it } from 'vitest';
import { accuracyDrop, allFinite, isConfident, judgeSet, referenceDistance, referenceTop, type GateThresholds } from '../../src/updates/validation-gate.js';
import { kernelFamily } from '../../src/updates/platform.js';

const T: GateThresholds = { min_top1_agreement: 0.8, max_mean_distance: 0.24, max_accuracy_drop: 0.15, min_accuracy: 0.5 };
const labels = ['ant', 'bee', 'cat', 'dog'];

describe('validation gate', () => {
  it('distance: 0 for the same distribution, 1 for disjoint ones, the rest as one bucket', () => {
    const p = [0.7, 0.2, 0.06, 0.04];
    expect(referenceDistance(referenceTop(p, 4), p)).toBeCloseTo(0, 9);
    expect(referenceDistance([{ index: 0, p: 1 }], [0, 0, 1, 0])).toBeCloseTo(1, 9);
    // Only the top-2 recorded: mass moved between unrecorded classes is invisible, mass moved out is not.
    const top2 = referenceTop(p, 2);
    expect(referenceDistance(top2, [0.7, 0.2, 0.04, 0.06])).toBeCloseTo(0, 9);
    expect(referenceDistance(top2, [0.5, 0.2, 0.26, 0.04])).toBeCloseTo(0.2, 9);
  });

  it('confident means a top-1 of at least 0.5 and 0.25 ahead of the second', () => {
    expect(isConfident([{ index: 0, p: 0.6 }, { index: 1, p: 0.3 }])).toBe(true);
    expect(isConfident([{ index: 0, p: 0.6 }, { index: 1, p: 0.4 }])).toBe(false);
    expect(isConfident([{ index: 0, p: 0.45 }, { index: 1, p: 0.1 }])).toBe(false);
  });

  it('near ties may flip; confident answers may not', () => {
    const tie = { ref: { expectedIndex: 0, top: referenceTop([0.5, 0.48, 0.01, 0.01]) }, probs: [0.47, 0.51, 0.01, 0.01] };
    const sure = { ref: { expectedIndex: 2, top: referenceTop([0.02, 0.02, 0.9, 0.06]) }, probs: [0.02, 0.02, 0.9, 0.06] };
    const flipped = judgeSet([tie, sure, sure, sure, sure], labels, T, 'set');
    expect(flipped).toMatchObject({ compared: 4, matched: 4, reasons: [] });
    const wrong = { ...sure, probs: [0.02, 0.02, 0.06, 0.9] };
    const v = judgeSet([tie, wrong, wrong, sure, sure], labels, T, 'set');
    expect(v).toMatchObject({ compared: 4, matched: 2 });
    expect(v.reasons).toEqual([
      "top-1 agreement 2/4 below 80% on set (the images the publisher's model was confident about)",
      expect.stringMatching(/^outputs differ from the publisher's by 0\.3\d+ on average \(total variation, max 0\.24\) on set$/),
    ]);
  });

  it('a release without reference vectors is judged on every top-1, as before', () => {
    const v = judgeSet([{ ref: { expectedIndex: 1 }, probs: [0.1, 0.6, 0.2, 0.1] }, { ref: { expectedIndex: 1 }, probs: [0.6, 0.1, 0.2, 0.1] }], labels, T, 'old');
    expect(v).toMatchObject({ compared: 2, matched: 1, meanDistance: undefined });
    expect(v.reasons).toEqual(['top-1 agreement 1/2 below 80% on old']);
  });

  it('truth is matched by label name, so a shuffled labels file fails', () => {
    const imgs = [0, 1, 2, 3].map((k) => ({ ref: { expectedIndex: k, truth: [labels[k]!] }, probs: [0, 1, 2, 3].map((i) => (i === k ? 0.97 : 0.01)) }));
    expect(judgeSet(imgs, labels, T, 's')).toMatchObject({ labelled: 4, correct: 4, reasons: [] });
    const shuffled = judgeSet(imgs, ['bee', 'cat', 'dog', 'ant'], T, 's');
    expect(shuffled).toMatchObject({ labelled: 4, correct: 0 });
    expect(shuffled.reasons).toEqual(['accuracy 0/4 on the labelled images of s is below the minimum 50%']);
  });

  it('accuracy may drop by the allowed share plus one image, not more', () => {
    expect(accuracyDrop({ correct: 52, labelled: 72 }, { correct: 62, labelled: 72 }, 0.15, 'x')).toBeUndefined(); // allowed 50.2
    expect(accuracyDrop({ correct: 50, labelled: 72 }, { correct: 62, labelled: 72 }, 0.15, 'x')).toBe('accuracy 50/72 is more than 15% below x (62/72)');
    expect(accuracyDrop({ correct: 0, labelled: 0 }, { correct: 0, labelled: 0 }, 0.15, 'x')).toBeUndefined();
  });

  it('non-finite values are caught', () => {
    expect(allFinite([0, 1, -3])).toBe(true);
    expect(allFinite([0, Infinity])).toBe(false);
    expect(allFinite(new Float32Array([Number.NaN]))).toBe(false);
  });

  it('kernel families follow what MLAS dispatches on', () => {
    expect(kernelFamily('x64', new Set(['avx2', 'fma']))).toBe('x64-avx2');
    expect(kernelFamily('x64', new Set(['avx2', 'avx512bw', 'avx512_vnni']))).toBe('x64-vnni');
    expect(kernelFamily('x64', new Set(['avx2', 'avx_vnni']))).toBe('x64-vnni');
    expect(kernelFamily('arm64', new Set(['fp', 'asimd', 'crc32']))).toBe('arm64-neon');
    expect(kernelFamily('arm64', new Set(['asimd', 'asimddp']))).toBe('arm64-dotprod');
  });
});
