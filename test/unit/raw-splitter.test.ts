import { describe, expect, it } from 'vitest';
import type { StreamError } from '../../src/camera/process/frame-splitter.js';
import { RawSplitter } from '../../src/camera/process/raw-splitter.js';

const W = 7;
const H = 5;
const SIZE = W * H * 3;

function frames(n: number): Buffer[] {
  return Array.from({ length: n }, (_, k) => Buffer.from(Array.from({ length: SIZE }, (_, i) => (i * 31 + k * 17) & 0xff)));
}

function collect(maxFrameBytes = 1 << 20): { splitter: RawSplitter; out: Buffer[]; errors: StreamError[] } {
  const out: Buffer[] = [];
  const errors: StreamError[] = [];
  const splitter = new RawSplitter({ width: W, height: H, maxFrameBytes, onFrame: (f) => out.push(f), onError: (e) => errors.push(e) });
  return { splitter, out, errors };
}

describe('RawSplitter', () => {
  it('cuts width*height*3 frames; one lying inside a chunk is a view of it', () => {
    const { splitter, out, errors } = collect();
    const input = frames(3);
    const chunk = Buffer.concat(input);
    splitter.push(chunk);
    splitter.end();
    expect(errors).toEqual([]);
    expect(out.length).toBe(3);
    out.forEach((f, i) => {
      expect(f.equals(input[i]!)).toBe(true);
      expect(f.buffer).toBe(chunk.buffer);
    });
  });

  it('assembles frames across chunks of any size, each into its own buffer', () => {
    const input = frames(4);
    const stream = Buffer.concat(input);
    for (const step of [1, 2, 13, SIZE - 1, SIZE + 1, 2 * SIZE + 5]) {
      const { splitter, out, errors } = collect();
      const chunks: Buffer[] = [];
      for (let off = 0; off < stream.length; off += step) chunks.push(Buffer.from(stream.subarray(off, off + step)));
      for (const c of chunks) splitter.push(c);
      splitter.end();
      expect(errors).toEqual([]);
      expect(out.length).toBe(4);
      out.forEach((f, i) => expect(f.equals(input[i]!)).toBe(true));
      // Frames never share memory: one kept (or modified) by the pipeline leaves the others alone.
      out[0]!.fill(0);
      out.slice(1).forEach((f, i) => expect(f.equals(input[i + 1]!)).toBe(true));
    }
  });

  it('reports a stream that ends mid-frame (a half frame)', () => {
    const { splitter, out, errors } = collect();
    const [f1, f2] = frames(2);
    splitter.push(Buffer.concat([f1!, f2!.subarray(0, SIZE / 3)]));
    splitter.end();
    expect(out.length).toBe(1);
    expect(errors.map((e) => [e.fatal, e.message])).toEqual([
      [false, `stream ended mid-frame: ${SIZE / 3} of ${SIZE} bytes of a ${W}x${H} RGB frame; dropped`],
    ]);
  });

  it('a frame size over max_frame_bytes is fatal', () => {
    const { splitter, out, errors } = collect(SIZE - 1);
    splitter.push(Buffer.concat(frames(2)));
    splitter.push(Buffer.concat(frames(2)));
    expect(out).toEqual([]);
    expect(errors.map((e) => e.fatal)).toEqual([true]);
    expect(errors[0]!.message).toMatch(/exceed max_frame_bytes/);
  });

  it('copies a frame at most once: a partial frame is written straight into the frame buffer', () => {
    const { splitter, out } = collect();
    const [f1] = frames(1);
    const chunks = [Buffer.from(f1!.subarray(0, 40)), Buffer.from(f1!.subarray(40))];
    const copies: number[] = [];
    const proto = Buffer.prototype as Buffer;
    // Counts the bytes Buffer#copy moves while the splitter runs.
    const copy = Object.getOwnPropertyDescriptor(proto, 'copy')?.value as (this: Buffer, ...args: Parameters<Buffer['copy']>) => number;
    proto.copy = function (this: Buffer, ...args: Parameters<Buffer['copy']>) {
      const n = copy.apply(this, args);
      copies.push(n);
      return n;
    };
    try {
      for (const chunk of chunks) splitter.push(chunk);
    } finally {
      proto.copy = copy;
    }
    expect(out.length).toBe(1);
    expect(copies.reduce((s, n) => s + n, 0)).toBe(SIZE);
  });
});
