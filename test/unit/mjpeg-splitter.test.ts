import { beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import type { StreamError } from '../../src/camera/process/frame-splitter.js';
import { MjpegSplitter } from '../../src/camera/process/mjpeg-splitter.js';
import { seededBytes } from '../../src/core/seeded-random.js';

function jpeg(width: number, height: number, rgb: [number, number, number], progressive = false): Promise<Buffer> {
  const [r, g, b] = rgb;
  // Noise, so the entropy-coded data is long and holds stuffed FF00 bytes.
  const raw = Buffer.alloc(width * height * 3);
  const noise = seededBytes(raw.length, r * 7 + g * 13 + b);
  for (let i = 0; i < raw.length; i++) raw[i] = (noise[i]! & 0x3f) + (i % 3 === 0 ? r : i % 3 === 1 ? g : b) / 2;
  return sharp(raw, { raw: { width, height, channels: 3 } }).jpeg({ quality: 90, progressive }).toBuffer();
}

/** A JPEG with an APP1 (EXIF-like) segment holding a complete JPEG thumbnail, SOI and EOI included. */
function withThumbnail(main: Buffer, thumb: Buffer): Buffer {
  const payload = Buffer.concat([Buffer.from('Exif\0\0II*\0', 'latin1'), thumb]);
  const header = Buffer.from([0xff, 0xe1, (payload.length + 2) >> 8, (payload.length + 2) & 0xff]);
  return Buffer.concat([main.subarray(0, 2), header, payload, main.subarray(2)]);
}

function collect(maxFrameBytes = 1 << 20): { splitter: MjpegSplitter; frames: Buffer[]; errors: StreamError[] } {
  const frames: Buffer[] = [];
  const errors: StreamError[] = [];
  const splitter = new MjpegSplitter({ maxFrameBytes, onFrame: (f) => frames.push(f), onError: (e) => errors.push(e) });
  return { splitter, frames, errors };
}

/** Feeds `data` in chunks of the given sizes (cycled), each chunk its own Buffer as from a pipe. */
function feed(splitter: MjpegSplitter, data: Buffer, sizes: number[]): void {
  let off = 0;
  let k = 0;
  while (off < data.length) {
    const n = sizes[k++ % sizes.length]!;
    splitter.push(Buffer.from(data.subarray(off, off + n)));
    off += n;
  }
}

describe('MjpegSplitter', () => {
  let a: Buffer;
  let b: Buffer;
  let c: Buffer;
  let progressive: Buffer;
  let thumb: Buffer;

  beforeAll(async () => {
    [a, b, c, progressive, thumb] = await Promise.all([
      jpeg(64, 48, [200, 30, 30]),
      jpeg(80, 60, [30, 200, 30]),
      jpeg(32, 32, [30, 30, 200]),
      jpeg(96, 64, [120, 120, 30], true),
      jpeg(16, 16, [255, 255, 255]),
    ]);
  });

  it('splits concatenated JPEGs; a frame inside one chunk is a view of it, not a copy', () => {
    const { splitter, frames, errors } = collect();
    const chunk = Buffer.concat([a, b, c]);
    splitter.push(chunk);
    splitter.end();
    expect(errors).toEqual([]);
    expect(frames.map((f) => f.equals([a, b, c][frames.indexOf(f)]!))).toEqual([true, true, true]);
    for (const f of frames) expect(f.buffer).toBe(chunk.buffer);
  });

  it('gives the same frames whatever the chunking (byte by byte, odd sizes, FF|D8 split)', () => {
    const stream = Buffer.concat([a, b, progressive, c]);
    for (const sizes of [[1], [2, 3, 5, 7], [a.length - 1, 1, 1000], [4096], [a.length + 1]]) {
      const { splitter, frames, errors } = collect();
      feed(splitter, stream, sizes);
      splitter.end();
      expect(errors).toEqual([]);
      expect(frames.length).toBe(4);
      expect(frames[0]!.equals(a)).toBe(true);
      expect(frames[1]!.equals(b)).toBe(true);
      expect(frames[2]!.equals(progressive)).toBe(true);
      expect(frames[3]!.equals(c)).toBe(true);
    }
  });

  it('frames spanning chunks are copied into their own buffers', () => {
    const { splitter, frames } = collect();
    const chunks = [Buffer.from(a.subarray(0, 100)), Buffer.from(a.subarray(100))];
    for (const ch of chunks) splitter.push(ch);
    expect(frames.length).toBe(1);
    expect(frames[0]!.equals(a)).toBe(true);
    // Its own memory: the pipe's chunks are reused or freed after push. (Small Buffers may share
    // Node's pool, so comparing .buffer would say nothing; overwriting the chunks does.)
    for (const ch of chunks) ch.fill(0);
    expect(frames[0]!.equals(a)).toBe(true);
  });

  it('does not cut a frame at the EOI of an embedded (EXIF) thumbnail', async () => {
    const framed = withThumbnail(a, thumb);
    const { splitter, frames, errors } = collect();
    feed(splitter, Buffer.concat([framed, b]), [333]);
    splitter.end();
    expect(errors).toEqual([]);
    expect(frames.length).toBe(2);
    expect(frames[0]!.equals(framed)).toBe(true);
    expect(frames[1]!.equals(b)).toBe(true);
    expect((await sharp(frames[0]).metadata()).width).toBe(64);
  });

  it('skips garbage before a frame and reports each burst once, with its size', () => {
    const { splitter, frames, errors } = collect();
    const junk1 = Buffer.from('HTTP/1.0 200 OK\r\n\r\n--boundary\r\n');
    const junk2 = Buffer.alloc(1000, 0x41);
    feed(splitter, Buffer.concat([junk1, a, b, junk2, c]), [17]);
    splitter.end();
    expect(frames.map((f) => f.length)).toEqual([a.length, b.length, c.length]);
    expect(errors.map((e) => [e.fatal, e.message])).toEqual([
      [false, `skipped ${junk1.length} bytes that are not JPEG data before a frame`],
      [false, `skipped ${junk2.length} bytes that are not JPEG data before a frame`],
    ]);
  });

  it('counts a false start (FFD8 followed by non-JPEG bytes) as garbage', () => {
    const { splitter, frames, errors } = collect();
    const fake = Buffer.from([0x00, 0xff, 0xd8, 0x12, 0x34, 0xff, 0xd8, 0xff, 0x00, 0x99]);
    splitter.push(Buffer.concat([fake, a]));
    expect(frames.length).toBe(1);
    expect(frames[0]!.equals(a)).toBe(true);
    expect(errors.map((e) => e.message)).toEqual([`skipped ${fake.length} bytes that are not JPEG data before a frame`]);
  });

  it('recovers the next frame when one is cut off (a new SOI before its EOI)', () => {
    const { splitter, frames, errors } = collect();
    const cut = a.subarray(0, a.length - 200);
    feed(splitter, Buffer.concat([cut, b]), [50]);
    expect(frames.length).toBe(1);
    expect(frames[0]!.equals(b)).toBe(true);
    expect(errors.map((e) => e.message)).toEqual([`skipped ${cut.length} bytes that are not JPEG data before a frame`]);
  });

  it('reports a frame truncated by the end of the stream', () => {
    const { splitter, frames, errors } = collect();
    splitter.push(Buffer.concat([a, b.subarray(0, 300)]));
    splitter.end();
    expect(frames.length).toBe(1);
    expect(errors.map((e) => [e.fatal, e.message])).toEqual([
      [false, 'stream ended with a truncated JPEG frame (300 bytes, no end marker FFD9); dropped'],
    ]);
  });

  it('drops an empty JPEG (SOI then EOI, no image data)', () => {
    const { splitter, frames, errors } = collect();
    splitter.push(Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xd9]), a]));
    expect(frames.length).toBe(1);
    expect(errors.map((e) => [e.fatal, e.message])).toEqual([[false, 'dropped an empty JPEG frame (4 bytes, no image data)']]);
  });

  it('a frame over max_frame_bytes is fatal, and nothing follows it', () => {
    const { splitter, frames, errors } = collect(1024);
    expect(a.length).toBeGreaterThan(1024);
    feed(splitter, Buffer.concat([a, c]), [512]);
    splitter.end();
    expect(frames).toEqual([]);
    expect(errors.length).toBe(1);
    expect(errors[0]!.fatal).toBe(true);
    expect(errors[0]!.message).toMatch(/beyond max_frame_bytes=1024|exceeds max_frame_bytes=1024/);
  });

  it('a complete frame over max_frame_bytes inside one chunk is fatal too', () => {
    const { splitter, frames, errors } = collect(1024);
    splitter.push(a);
    expect(frames).toEqual([]);
    expect(errors.map((e) => [e.fatal, e.message])).toEqual([[true, `a JPEG frame of ${a.length} bytes exceeds max_frame_bytes=1024`]]);
  });

  it('a stream without JPEG frames (raw pixels) becomes fatal after max_frame_bytes', () => {
    const { splitter, frames, errors } = collect(64 * 1024);
    const rawPixels = seededBytes(640 * 480 * 3, 1);
    feed(splitter, rawPixels, [65536]);
    expect(frames).toEqual([]);
    expect(errors.length).toBe(1);
    expect(errors[0]!.fatal).toBe(true);
    expect(errors[0]!.message).toMatch(/not MJPEG|max_frame_bytes/);
  });

  it('reports garbage left at the end of the stream', () => {
    const { splitter, errors } = collect();
    splitter.push(Buffer.concat([a, Buffer.from('trailing')]));
    splitter.end();
    expect(errors.map((e) => e.message)).toEqual(['stream ended with 8 bytes that are not JPEG data; dropped']);
  });

  it('accepts fill bytes (FF FF ...) before markers', () => {
    const { splitter, frames, errors } = collect();
    // SOI, then extra FFs before the next marker, as the standard allows.
    const filled = Buffer.concat([a.subarray(0, 2), Buffer.from([0xff, 0xff]), a.subarray(2)]);
    splitter.push(filled);
    expect(errors).toEqual([]);
    expect(frames[0]!.equals(filled)).toBe(true);
  });
});
