import { beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { colourImage, tempDir, writeColourModel } from '../helpers/fixtures.js';
import { DEMO_PALETTE } from '../../src/camera/palette.js';

interface Line {
  file: string;
  top?: { index: number; label: string; score: number }[];
  inference_ms?: number;
  error?: string;
}

const parse = (stdout: string): Line[] => stdout.trim().split('\n').map((l) => JSON.parse(l) as Line);

describe('classify command', () => {
  let dir: string;
  let images: string;
  const colours = ['blue', 'orange', 'black', 'red'];

  beforeAll(async () => {
    dir = tempDir();
    images = join(dir, 'images');
    mkdirSync(images);
    for (const [i, c] of colours.entries()) {
      writeFileSync(join(images, `${i}-${c}.${i % 2 ? 'png' : 'jpg'}`), await colourImage(c, { format: i % 2 ? 'png' : 'jpeg' }));
    }
  });

  it('prints one JSON line per image, in name order, with the documented fields', async () => {
    const m = writeColourModel(join(dir, 'plain'));
    const extra = join(dir, 'single-green.jpg');
    writeFileSync(extra, await colourImage('green'));
    const r = await runCli(['classify', '--model', m.model, '--labels', m.labels, '--top-k', '2', images, extra]);
    expect(r.code).toBe(0);
    const lines = parse(r.stdout);
    expect(lines.map((l) => l.file)).toEqual(['0-blue.jpg', '1-orange.png', '2-black.jpg', '3-red.png', 'single-green.jpg']);
    expect(lines.map((l) => l.top?.[0]?.label)).toEqual([...colours, 'green']);
    for (const l of lines) {
      expect(Object.keys(l).sort()).toEqual(['file', 'inference_ms', 'top']);
      expect(l.top).toHaveLength(2);
      expect(l.top?.[0]?.index).toBe(DEMO_PALETTE.findIndex((p) => p.name === l.top?.[0]?.label));
      expect(l.inference_ms).toBeGreaterThan(0);
    }
  });

  it('applies softmax to logits but not to a model that already outputs probabilities', async () => {
    const logits = writeColourModel(join(dir, 'logits'), { output: 'logits' });
    const probs = writeColourModel(join(dir, 'probs'), { output: 'probabilities' });
    const a = parse((await runCli(['classify', '--model', logits.model, '--labels', logits.labels, '--top-k', '8', images])).stdout);
    const b = parse((await runCli(['classify', '--model', probs.model, '--labels', probs.labels, '--top-k', '8', images])).stdout);
    for (const [i, line] of a.entries()) {
      const sum = (line.top ?? []).reduce((s, t) => s + t.score, 0);
      expect(sum).toBeCloseTo(1, 4);
      // A second softmax would flatten the distribution; the same numbers mean it was applied once.
      (line.top ?? []).forEach((t, k) => expect(b[i]?.top?.[k]?.score).toBeCloseTo(t.score, 4));
    }
  });

  it('feeds float16 models float16, and reads [N,K,1,1] outputs', async () => {
    const fp16 = writeColourModel(join(dir, 'fp16'), { dtype: 'float16', outputRank4: true });
    const r = await runCli(['classify', '--model', fp16.model, '--labels', fp16.labels, images]);
    expect(r.code).toBe(0);
    expect(parse(r.stdout).map((l) => l.top?.[0]?.label)).toEqual(colours);
  });

  it('reads synset.txt style labels', async () => {
    const m = writeColourModel(join(dir, 'synset'));
    writeFileSync(m.labels, DEMO_PALETTE.map((p, i) => `n${String(i).padStart(8, '0')} ${p.name}, the colour ${p.name}`).join('\n'));
    const r = await runCli(['classify', '--model', m.model, '--labels', m.labels, '--top-k', '1', images]);
    expect(parse(r.stdout)[0]?.top?.[0]?.label).toBe('blue, the colour blue');
  });

  it('reports an undecodable file on its own line, goes on, and exits 1', async () => {
    const m = writeColourModel(join(dir, 'errs'));
    const bad = join(dir, 'broken.jpg');
    writeFileSync(bad, Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]));
    const r = await runCli(['classify', '--model', m.model, '--labels', m.labels, bad, join(images, '0-blue.jpg')]);
    expect(r.code).toBe(1);
    const [first, second] = parse(r.stdout);
    expect(first?.file).toBe('broken.jpg');
    expect(first?.error).toMatch(/cannot decode image/);
    expect(second?.top?.[0]?.label).toBe('blue');
  });
});
