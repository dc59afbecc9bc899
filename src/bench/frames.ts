import sharp from 'sharp';
import { seededRandom } from '../core/seeded-random.js';

/**
 * In-memory frames for the bench: camera-like 640x480 JPEGs, or packed RGB24 at the model's
 * input size (what ffmpeg's scaled raw output gives the daemon). Gradients plus noise, so the
 * JPEGs are not trivially compressible and decode like real camera frames (~50-100 KB each).
 */

export const JPEG_WIDTH = 640;
export const JPEG_HEIGHT = 480;

/** Packed RGB: a diagonal gradient whose direction and hue differ per frame, plus noise. */
export function syntheticRgb(width: number, height: number, index: number): Buffer {
  // Seeded: the same frames on every run, so runs are comparable.
  const rand = seededRandom(0x5eed + index);
  const pixels = Buffer.alloc(width * height * 3);
  const phase = [rand() * 255, rand() * 255, rand() * 255];
  const dx = 0.5 + rand();
  const dy = 0.5 + rand();
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const base = (x * dx + y * dy) * (255 / (width + height));
      const o = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) {
        const v = (base * (c + 1) + phase[c]! + (rand() - 0.5) * 40) % 256;
        pixels[o + c] = v < 0 ? v + 256 : v;
      }
    }
  }
  return pixels;
}

/** `count` distinct 640x480 JPEGs (quality 85, like a typical camera or MJPEG stream). */
export async function jpegFrames(count: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const raw = syntheticRgb(JPEG_WIDTH, JPEG_HEIGHT, i);
    out.push(await sharp(raw, { raw: { width: JPEG_WIDTH, height: JPEG_HEIGHT, channels: 3 } }).jpeg({ quality: 85 }).toBuffer());
  }
  return out;
}

/** `count` distinct packed RGB24 frames of `size` x `size` (Frame.raw). */
export function rawFrames(count: number, size: number): Buffer[] {
  return Array.from({ length: count }, (_, i) => syntheticRgb(size, size, i));
}
