import { crc32, deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import sharp, { type Color, type Sharp } from 'sharp';
import type { PreprocessSpec } from '../../src/config/schema.js';
import {
  FrameDecodeError,
  createPreprocessor,
  createTensorizer,
  decodeAndCrop,
  inputDims,
} from '../../src/vision/preprocess.js';
import { PRESETS } from '../../src/vision/presets.js';
import { seededBytes } from '../../src/core/seeded-random.js';
import { float32ToFloat16Bits } from '../../src/vision/float16.js';

type Rgb = [number, number, number];
const RED: Rgb = [255, 0, 0];
const GREEN: Rgb = [0, 255, 0];
const BLUE: Rgb = [0, 0, 255];
const WHITE: Rgb = [255, 255, 255];
const NAMED: Record<string, Rgb> = { red: RED, green: GREEN, blue: BLUE, white: WHITE };

/** A raw RGB image painted pixel by pixel, as a sharp pipeline. */
function paint(width: number, height: number, colour: (x: number, y: number) => Rgb): Sharp {
  const buf = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) buf.set(colour(x, y), (y * width + x) * 3);
  }
  return sharp(buf, { raw: { width, height, channels: 3 } });
}

function solid(width: number, height: number, channels: 3 | 4, bg: Color): Sharp {
  return sharp({ create: { width, height, channels, background: bg } });
}

function pixel(pixels: Buffer, size: number, x: number, y: number): Rgb {
  const o = (y * size + x) * 3;
  return [pixels[o]!, pixels[o + 1]!, pixels[o + 2]!];
}

function nearest(rgb: Rgb): string {
  let best = '';
  let bestD = Infinity;
  for (const [name, c] of Object.entries(NAMED)) {
    const d = (rgb[0] - c[0]) ** 2 + (rgb[1] - c[1]) ** 2 + (rgb[2] - c[2]) ** 2;
    if (d < bestD) [best, bestD] = [name, d];
  }
  return best;
}

const spec = (over: Partial<PreprocessSpec> = {}): PreprocessSpec => ({ ...PRESETS.imagenet, ...over });

describe('decodeAndCrop: EXIF orientation', () => {
  // Stored 400x200: top-left red, top-right blue, bottom-left green, bottom-right white.
  const quadrants = (x: number, y: number): Rgb => (y < 100 ? (x < 200 ? RED : BLUE) : x < 200 ? GREEN : WHITE);
  // What a viewer shows in [top-left, top-right, bottom-left, bottom-right] after applying the tag.
  const cases: [number, string[], [number, number]][] = [
    [1, ['red', 'blue', 'green', 'white'], [400, 200]],
    [3, ['white', 'green', 'blue', 'red'], [400, 200]], // 180 degrees
    [6, ['green', 'red', 'white', 'blue'], [200, 400]], // rotate 90 clockwise
    [8, ['blue', 'white', 'red', 'green'], [200, 400]], // rotate 90 counter-clockwise
  ];
  it.each(cases)('orientation %i puts the colours where a viewer sees them', async (orientation, seen, size) => {
    const jpeg = await paint(400, 200, quadrants).jpeg({ quality: 95 }).withMetadata({ orientation }).toBuffer();
    const meta = await sharp(jpeg).metadata();
    expect([meta.width, meta.height, meta.orientation ?? 1]).toEqual([400, 200, orientation]);

    const out = await decodeAndCrop(jpeg, spec({ size: 64, resize: 64 }));
    expect([out.width, out.height]).toEqual(size);
    expect(out.pixels.length).toBe(64 * 64 * 3);
    const corners = [pixel(out.pixels, 64, 16, 16), pixel(out.pixels, 64, 48, 16), pixel(out.pixels, 64, 16, 48), pixel(out.pixels, 64, 48, 48)];
    expect(corners.map(nearest)).toEqual(seen);
  });
});

describe('decodeAndCrop: resize short side, then center crop', () => {
  // Four bands of 256 px: after resizing to 512x256 each band is 128 wide, and the 224 crop
  // (x 144..367) keeps only the second and third band.
  const bands = [RED, GREEN, BLUE, WHITE];

  it('landscape: the outer left/right bands are cut off', async () => {
    const png = await paint(1024, 512, (x) => bands[x >> 8]!).png().toBuffer();
    const { pixels, width, height } = await decodeAndCrop(png, spec());
    expect([width, height]).toEqual([1024, 512]);
    expect(pixels.length).toBe(224 * 224 * 3);
    expect(nearest(pixel(pixels, 224, 0, 0))).toBe('green');
    expect(nearest(pixel(pixels, 224, 100, 112))).toBe('green');
    expect(nearest(pixel(pixels, 224, 124, 112))).toBe('blue');
    expect(nearest(pixel(pixels, 224, 223, 223))).toBe('blue');
    const seen = new Set<string>();
    for (let y = 0; y < 224; y += 7) for (let x = 0; x < 224; x++) seen.add(nearest(pixel(pixels, 224, x, y)));
    expect([...seen].sort()).toEqual(['blue', 'green']);
  });

  it('portrait: the outer top/bottom bands are cut off', async () => {
    const png = await paint(512, 1024, (_, y) => bands[y >> 8]!).png().toBuffer();
    const { pixels, width, height } = await decodeAndCrop(png, spec());
    expect([width, height]).toEqual([512, 1024]);
    expect(nearest(pixel(pixels, 224, 112, 0))).toBe('green');
    expect(nearest(pixel(pixels, 224, 112, 100))).toBe('green');
    expect(nearest(pixel(pixels, 224, 112, 124))).toBe('blue');
    expect(nearest(pixel(pixels, 224, 0, 223))).toBe('blue');
  });

  it('upsamples an image smaller than the crop', async () => {
    const png = await solid(20, 10, 3, { r: 200, g: 100, b: 50 }).png().toBuffer();
    const { pixels } = await decodeAndCrop(png, spec());
    expect(pixels.length).toBe(224 * 224 * 3);
    expect(pixel(pixels, 224, 112, 112)).toEqual([200, 100, 50]);
  });
});

describe('decodeAndCrop: every input format comes out as 3 x 8-bit sRGB', () => {
  const small = spec({ size: 16, resize: 16 });
  const expectAll = (pixels: Buffer, check: (p: Rgb) => void): void => {
    expect(pixels.length).toBe(16 * 16 * 3);
    for (let i = 0; i < 256; i += 17) check(pixel(pixels, 16, i % 16, i >> 4));
  };

  it('grayscale (1 channel)', async () => {
    const png = await solid(40, 30, 3, { r: 77, g: 77, b: 77 }).toColourspace('b-w').png().toBuffer();
    expect((await sharp(png).metadata()).channels).toBe(1);
    expectAll((await decodeAndCrop(png, small)).pixels, (p) => expect(p).toEqual([77, 77, 77]));
  });

  it('grayscale + alpha', async () => {
    const png = await solid(40, 30, 4, { r: 128, g: 128, b: 128, alpha: 0.5 }).toColourspace('b-w').png().toBuffer();
    const meta = await sharp(png).metadata();
    expect([meta.channels, meta.hasAlpha]).toEqual([2, true]);
    expectAll((await decodeAndCrop(png, small)).pixels, (p) => {
      expect(p[0]).toBeGreaterThan(120);
      expect(p[0]).toBeLessThan(136);
      expect(p[1]).toBe(p[0]);
      expect(p[2]).toBe(p[0]);
    });
  });

  it('RGBA: alpha is dropped, the colour is kept', async () => {
    const png = await solid(40, 30, 4, { r: 0, g: 0, b: 255, alpha: 0.3 }).png().toBuffer();
    expect((await sharp(png).metadata()).channels).toBe(4);
    expectAll((await decodeAndCrop(png, small)).pixels, (p) => expect(p).toEqual([0, 0, 255]));
  });

  it('16-bit RGB PNG', async () => {
    const png = await solid(40, 30, 3, { r: 10, g: 200, b: 100 }).toColourspace('rgb16').png().toBuffer();
    expect((await sharp(png).metadata()).depth).toBe('ushort');
    expectAll((await decodeAndCrop(png, small)).pixels, (p) => {
      p.forEach((v, c) => expect(Math.abs(v - [10, 200, 100][c]!)).toBeLessThanOrEqual(1));
    });
  });

  it('16-bit grayscale PNG', async () => {
    const png = await solid(40, 30, 3, { r: 180, g: 180, b: 180 }).toColourspace('grey16').png().toBuffer();
    const meta = await sharp(png).metadata();
    expect([meta.depth, meta.channels]).toEqual(['ushort', 1]);
    expectAll((await decodeAndCrop(png, small)).pixels, (p) => {
      expect(Math.abs(p[0] - 180)).toBeLessThanOrEqual(1);
      expect([p[1], p[2]]).toEqual([p[0], p[0]]);
    });
  });

  it('CMYK JPEG: a red image stays red', async () => {
    const jpeg = await solid(40, 30, 3, { r: 220, g: 20, b: 30 }).toColourspace('cmyk').jpeg().toBuffer();
    const meta = await sharp(jpeg).metadata();
    expect([meta.space, meta.channels]).toEqual(['cmyk', 4]);
    expectAll((await decodeAndCrop(jpeg, small)).pixels, (p) => {
      expect(p[0]).toBeGreaterThan(180);
      expect(p[1]).toBeLessThan(60);
      expect(p[2]).toBeLessThan(60);
    });
  });
});

describe('decodeAndCrop: frames that cannot be decoded', () => {
  const decodeError = async (data: Buffer): Promise<FrameDecodeError> => {
    const err: unknown = await decodeAndCrop(data, spec()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FrameDecodeError);
    return err as FrameDecodeError;
  };

  it('empty buffer', async () => {
    expect((await decodeError(Buffer.alloc(0))).message).toBe('empty frame (0 bytes)');
  });

  it('truncated JPEG (first half of a valid one)', async () => {
    const jpeg = await paint(128, 128, (x, y) => [x * 2, y * 2, (x + y) & 255]).jpeg().toBuffer();
    await expect(decodeAndCrop(jpeg, spec())).resolves.toBeDefined();
    const err = await decodeError(jpeg.subarray(0, jpeg.length >> 1));
    expect(err.message).toMatch(/^cannot decode image: .*(premature end|truncated)/is);
  });

  it('a PNG decompression bomb (60000 x 60000 in a few KB) is refused before it is decoded', async () => {
    // One IHDR claiming 3.6 gigapixels and a zlib stream of a few rows: what an attacker drops
    // into a watched directory. Decoding it would need ~10 GB; the pixel limit refuses it.
    const chunk = (type: string, data: Buffer): Buffer => {
      const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
      const len = Buffer.alloc(4);
      len.writeUInt32BE(data.length);
      const crc = Buffer.alloc(4);
      crc.writeUInt32BE(crc32(body));
      return Buffer.concat([len, body, crc]);
    };
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(60_000, 0);
    ihdr.writeUInt32BE(60_000, 4);
    ihdr.set([8, 0, 0, 0, 0], 8); // 8-bit grayscale, no interlace
    const rows = deflateSync(Buffer.alloc(4 * 60_001));
    const bomb = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', rows), chunk('IEND', Buffer.alloc(0))]);
    expect(bomb.length).toBeLessThan(10_000);
    expect((await sharp(bomb, { limitInputPixels: false }).metadata()).width).toBe(60_000);
    expect((await decodeError(bomb)).message).toMatch(/^cannot decode image: .*pixel limit/i);
  });

  it('random bytes and a text file', async () => {
    const noise = seededBytes(4096, 12345);
    expect((await decodeError(noise)).message).toMatch(/^cannot decode image: .*unsupported image format/i);
    const text = Buffer.from('camera: front\nfps: 2\n# not an image\n');
    expect((await decodeError(text)).message).toMatch(/^cannot decode image: .*unsupported image format/i);
  });
});

describe('createTensorizer', () => {
  // 2x2 image: red, green / blue, (10, 20, 30).
  const pixels = Buffer.from([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]);
  const plane = 4;
  const tiny = (base: 'imagenet' | 'caffe-bgr', over: Partial<PreprocessSpec> = {}): PreprocessSpec => ({
    ...PRESETS[base],
    size: 2,
    resize: 2,
    ...over,
  });
  const norm = (v: number, c: number): number => Math.fround((v / 255 - [0.485, 0.456, 0.406][c]!) / [0.229, 0.224, 0.225][c]!);

  it('imagenet, NCHW, float32: planar RGB, normalized', () => {
    const out = createTensorizer(tiny('imagenet'), 'float32')(pixels);
    expect(out).toBeInstanceOf(Float32Array);
    expect(out.length).toBe(12);
    expect(out[0]).toBeCloseTo((1 - 0.485) / 0.229, 5); // red pixel, R plane
    expect(out[1]).toBeCloseTo(-0.485 / 0.229, 5); // green pixel, R plane
    expect(out[plane + 1]).toBeCloseTo((1 - 0.456) / 0.224, 5); // green pixel, G plane
    expect(out[2 * plane + 2]).toBeCloseTo((1 - 0.406) / 0.225, 5); // blue pixel, B plane
    const expected = [0, 1, 2].flatMap((c) => [0, 1, 2, 3].map((i) => norm(pixels[i * 3 + c]!, c)));
    expect([...out]).toEqual(expected);
  });

  it('NHWC interleaves the channels per pixel', () => {
    const out = createTensorizer(tiny('imagenet', { layout: 'nhwc' }), 'float32')(pixels);
    const expected = [0, 1, 2, 3].flatMap((i) => [0, 1, 2].map((c) => norm(pixels[i * 3 + c]!, c)));
    expect([...out]).toEqual(expected);
    expect(out[0]).toBeCloseTo((1 - 0.485) / 0.229, 5);
    expect(out[11]).toBeCloseTo((30 / 255 - 0.406) / 0.225, 5);
  });

  it('caffe-bgr: B plane first, value = pixel - mean, no scaling', () => {
    const out = createTensorizer(tiny('caffe-bgr'), 'float32')(pixels);
    expect(out[0]).toBeCloseTo(0 - 103.94, 4); // red pixel, B plane
    expect(out[2]).toBeCloseTo(255 - 103.94, 4); // blue pixel, B plane
    expect(out[3]).toBeCloseTo(30 - 103.94, 4);
    expect(out[plane + 1]).toBeCloseTo(255 - 116.78, 4); // green pixel, G plane
    expect(out[2 * plane]).toBeCloseTo(255 - 123.68, 4); // red pixel, R plane
    expect(out[2 * plane + 3]).toBeCloseTo(10 - 123.68, 4);
  });

  it('float16 output is the fp16 bit pattern of the float32 value', () => {
    for (const base of ['imagenet', 'caffe-bgr'] as const) {
      const f32 = createTensorizer(tiny(base), 'float32')(pixels);
      const f16 = createTensorizer(tiny(base), 'float16')(pixels);
      expect(f16).toBeInstanceOf(Uint16Array);
      expect([...f16]).toEqual([...f32].map((v) => float32ToFloat16Bits(v)));
    }
  });

  it('uint8 passes the pixels through (reordered, not normalized)', () => {
    const nhwc = createTensorizer(tiny('imagenet', { layout: 'nhwc' }), 'uint8')(pixels);
    expect(nhwc).toBeInstanceOf(Uint8Array);
    expect([...nhwc]).toEqual([...pixels]);
    const nchwBgr = createTensorizer(tiny('caffe-bgr'), 'uint8')(pixels);
    expect([...nchwBgr]).toEqual([0, 0, 255, 30, 0, 255, 0, 20, 255, 0, 0, 10]);
  });

  it('rejects a pixel buffer of the wrong size', () => {
    expect(() => createTensorizer(tiny('imagenet'), 'float32')(Buffer.alloc(11))).toThrow(/expected 12 pixel bytes, got 11/);
  });

  it('inputDims follows the layout', () => {
    expect(inputDims(PRESETS.imagenet)).toEqual([1, 3, 224, 224]);
    expect(inputDims({ ...PRESETS.imagenet, layout: 'nhwc', size: 160 })).toEqual([1, 160, 160, 3]);
  });
});

describe('createPreprocessor', () => {
  it('decodes, crops and tensorizes in one step', async () => {
    const jpeg = await solid(320, 240, 3, { r: 255, g: 0, b: 0 }).jpeg().toBuffer();
    const prep = createPreprocessor(PRESETS.imagenet, 'float32');
    const t = await prep(jpeg);
    expect([t.width, t.height, t.dims]).toEqual([320, 240, [1, 3, 224, 224]]);
    expect(t.data.length).toBe(3 * 224 * 224);
    expect(t.data[224 * 112 + 112]).toBeGreaterThan(2); // R plane, ~ (1 - 0.485) / 0.229
    expect(t.data[2 * 224 * 224 + 224 * 112 + 112]).toBeLessThan(-1.5); // B plane, ~ -0.406 / 0.225
    await expect(prep(Buffer.alloc(0))).rejects.toBeInstanceOf(FrameDecodeError);
  });
});
