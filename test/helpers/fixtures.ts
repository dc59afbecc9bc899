import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { DEMO_PALETTE } from '../../src/camera/palette.js';
import { demoLabels, type DemoModelOptions, buildDemoModel } from '../../src/modelgen/demo-model.js';

export function tempDir(prefix = 'ec-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function paletteRgb(name: string): readonly [number, number, number] {
  const c = DEMO_PALETTE.find((p) => p.name === name);
  if (!c) throw new Error(`no palette colour ${name}`);
  return c.rgb;
}

/** A `width`x`height` image of one palette colour with a little noise, encoded as `format`. */
export async function colourImage(
  name: string,
  opts: { width?: number; height?: number; format?: 'jpeg' | 'png' } = {},
): Promise<Buffer> {
  const { width = 320, height = 240, format = 'jpeg' } = opts;
  const [r, g, b] = paletteRgb(name);
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    const n = ((i * 2654435761) >>> 24) % 21 - 10;
    raw[i * 3] = Math.max(0, Math.min(255, r + n));
    raw[i * 3 + 1] = Math.max(0, Math.min(255, g + n));
    raw[i * 3 + 2] = Math.max(0, Math.min(255, b + n));
  }
  const img = sharp(raw, { raw: { width, height, channels: 3 } });
  return format === 'png' ? img.png().toBuffer() : img.jpeg({ quality: 90 }).toBuffer();
}

/** Writes the demo colour model (with options) and its labels; returns their paths. */
export function writeColourModel(dir: string, opts: DemoModelOptions = {}, name = 'colors'): { model: string; labels: string } {
  mkdirSync(dir, { recursive: true });
  const model = join(dir, `${name}.onnx`);
  const labels = join(dir, `${name}.labels.txt`);
  writeFileSync(model, buildDemoModel(opts));
  writeFileSync(labels, demoLabels());
  return { model, labels };
}
