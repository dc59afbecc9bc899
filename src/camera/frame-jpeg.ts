import sharp from 'sharp';
import type { Frame } from './frame.js';

const JPEG_QUALITY = 85;

function isJpeg(data: Buffer): boolean {
  return data.length > 3 && data[0] === 0xff && data[1] === 0xd8 && data[2] === 0xff;
}

/**
 * A frame as JPEG bytes, for snapshots (MQTT command, HTTP). Encoding happens only when someone
 * asks: raw frames (ffmpeg at model size) are encoded, PNG and other files from a directory
 * source are transcoded, JPEG is passed through untouched.
 */
export async function frameJpeg(frame: Pick<Frame, 'data' | 'raw'>): Promise<Buffer> {
  if (frame.raw) return sharp(frame.data, { raw: { ...frame.raw, channels: 3 } }).jpeg({ quality: JPEG_QUALITY }).toBuffer();
  if (isJpeg(frame.data)) return frame.data;
  return sharp(frame.data).jpeg({ quality: JPEG_QUALITY }).toBuffer();
}
