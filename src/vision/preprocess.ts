import sharp, { type Metadata } from 'sharp';
import type { PreprocessSpec } from '../config/schema.js';
import { float32ToFloat16Bits } from './float16.js';
import type { RawFormat } from '../camera/frame.js';

export type InputDType = 'float32' | 'float16' | 'uint8';
export type TensorData = Float32Array | Uint16Array | Uint8Array;

export interface PreparedTensor {
  data: TensorData;
  dims: number[];
  /** Size of the decoded, EXIF-oriented source image. */
  width: number;
  height: number;
}

/** A frame that cannot be decoded (empty, truncated, not an image). The frame is skipped. */
export class FrameDecodeError extends Error {
  override name = 'FrameDecodeError';
}

// A camera frame is never bigger than this; anything larger is garbage or an attack on memory.
const MAX_INPUT_PIXELS = 64_000_000;

/** Source size after EXIF orientation (orientations 5-8 rotate by 90 degrees). */
function orientedSize(meta: Metadata): { width: number; height: number } {
  const { width = 0, height = 0, orientation = 1 } = meta;
  return orientation >= 5 ? { width: height, height: width } : { width, height };
}

/**
 * Decode, honour EXIF orientation, resize the short side to `spec.resize`, center crop
 * `spec.size`, and return 8-bit sRGB RGB pixels (HWC). Grayscale, CMYK, 16-bit and alpha
 * inputs all come out as 3 x 8-bit channels.
 */
export async function decodeAndCrop(
  data: Buffer,
  spec: PreprocessSpec,
  raw?: RawFormat,
): Promise<{ pixels: Buffer; width: number; height: number }> {
  if (data.length === 0) throw new FrameDecodeError('empty frame (0 bytes)');
  if (raw) {
    if (data.length !== raw.width * raw.height * 3) {
      throw new FrameDecodeError(`raw frame has ${data.length} bytes, expected ${raw.width}x${raw.height}x3`);
    }
    // Already scaled and cropped to the model input by the source (ffmpeg): nothing to do.
    if (raw.width === spec.size && raw.height === spec.size) return { pixels: data, ...raw };
  }
  try {
    // failOn 'error' also rejects truncated files, but tolerates the harmless warnings that
    // many camera JPEGs trigger.
    const img = raw
      ? sharp(data, { raw: { width: raw.width, height: raw.height, channels: 3 } })
      : sharp(data, { failOn: 'error', limitInputPixels: MAX_INPUT_PIXELS, autoOrient: true });
    const { width, height } = raw ?? orientedSize(await img.metadata());
    if (width <= 0 || height <= 0) throw new FrameDecodeError('image has no dimensions');
    const factor = spec.resize / Math.min(width, height);
    const rw = Math.max(spec.size, Math.round(width * factor));
    const rh = Math.max(spec.size, Math.round(height * factor));
    const { data: pixels, info } = await img
      .resize(rw, rh, { fit: 'fill', kernel: spec.kernel })
      .extract({ left: (rw - spec.size) >> 1, top: (rh - spec.size) >> 1, width: spec.size, height: spec.size })
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new FrameDecodeError(`expected 3 channels after conversion, got ${info.channels}`);
    return { pixels, width, height };
  } catch (err) {
    if (err instanceof FrameDecodeError) throw err;
    throw new FrameDecodeError(`cannot decode image: ${(err as Error).message}`);
  }
}

/**
 * Builds the function that turns HWC RGB bytes into the model's input tensor. The per-channel
 * affine map (x * scale - mean) / std is precomputed as a 256-entry table per channel, so the
 * per-pixel work is one lookup and one store, for any dtype.
 */
export function createTensorizer(spec: PreprocessSpec, dtype: InputDType): (pixels: Buffer) => TensorData {
  const { size, layout } = spec;
  const plane = size * size;
  // Model channel c reads source (RGB) channel src[c].
  const src = spec.channel_order === 'rgb' ? [0, 1, 2] : [2, 1, 0];
  const tables = [0, 1, 2].map((c) => {
    const mean = spec.mean[c] ?? 0;
    const std = spec.std[c] ?? 1;
    const f32 = new Float32Array(256);
    for (let v = 0; v < 256; v++) f32[v] = (v * spec.scale - mean) / std;
    if (dtype === 'float16') return Uint16Array.from(f32, (x) => float32ToFloat16Bits(x));
    if (dtype === 'uint8') return Uint8Array.from({ length: 256 }, (_, v) => v);
    return f32;
  });
  const make = (): TensorData =>
    dtype === 'float32' ? new Float32Array(plane * 3) : dtype === 'float16' ? new Uint16Array(plane * 3) : new Uint8Array(plane * 3);

  return (pixels) => {
    if (pixels.length !== plane * 3) throw new FrameDecodeError(`expected ${plane * 3} pixel bytes, got ${pixels.length}`);
    const out = make();
    for (let c = 0; c < 3; c++) {
      const table = tables[c]!;
      const s = src[c]!;
      if (layout === 'nchw') {
        const base = c * plane;
        for (let i = 0; i < plane; i++) out[base + i] = table[pixels[i * 3 + s]!]!;
      } else {
        for (let i = 0; i < plane; i++) out[i * 3 + c] = table[pixels[i * 3 + s]!]!;
      }
    }
    return out;
  };
}

export function inputDims(spec: PreprocessSpec): number[] {
  return spec.layout === 'nchw' ? [1, 3, spec.size, spec.size] : [1, spec.size, spec.size, 3];
}

/** decodeAndCrop + tensorize, for one model. */
export function createPreprocessor(
  spec: PreprocessSpec,
  dtype: InputDType,
): (data: Buffer, raw?: RawFormat) => Promise<PreparedTensor> {
  const tensorize = createTensorizer(spec, dtype);
  const dims = inputDims(spec);
  return async (data, raw) => {
    const { pixels, width, height } = await decodeAndCrop(data, spec, raw);
    return { data: tensorize(pixels), dims, width, height };
  };
}
