/**
 * Cuts a stream of concatenated JPEG images (`ffmpeg -f mjpeg pipe:1`, GStreamer's
 * `jpegenc ! fdsink`) into one Buffer per image.
 *
 * Why it follows the JPEG segment structure instead of searching for FFD8/FFD9: a JPEG may
 * carry a complete JPEG thumbnail (EXIF in APP1, JFXX in APP0), SOI and EOI included. A plain
 * byte search would end the frame at the thumbnail's EOI, or start a new one at its SOI. Here
 * every marker segment (APPn, DQT, DHT, SOF, COM, ...) is skipped by its length field, so
 * nothing inside one is ever taken for a marker; only the entropy-coded data after SOS is
 * scanned byte by byte, and there an FF is always followed by 00 (stuffing), RSTn, or a real
 * marker, so the EOI found there is the image's own. The structure checks (a marker where one
 * must be, valid marker codes, lengths >= 2) also make random bytes fail fast instead of
 * being taken for a frame.
 *
 * Copies: chunks are kept by reference until their frame is complete; a frame inside one chunk
 * is a subarray of it, a frame spanning chunks is copied once into its own Buffer.
 */
import { StreamError, type FrameSplitter, type SplitterDeps } from './frame-splitter.js';

// Parser states.
const SEEK = 0; // outside a frame: looking for SOI (FF D8)
const MARKER = 1; // inside the headers: expecting FF + marker code
const LENGTH = 2; // reading a segment's 2-byte length
const SKIP = 3; // skipping a segment's payload
const ENTROPY = 4; // compressed data after SOS: looking for the next marker

const SOI = 0xd8;
const EOI = 0xd9;
const SOS = 0xda;

function isRst(b: number): boolean {
  return b >= 0xd0 && b <= 0xd7;
}

export class MjpegSplitter implements FrameSplitter {
  private state = SEEK;
  /** The previous byte was an FF (the marker prefix), possibly in the previous chunk. */
  private afterFF = false;
  private lengthHi = -1;
  private marker = 0;
  private remaining = 0;
  private sawScan = false;
  /** The current frame's chunks; it starts at `startOffset` in parts[0]. */
  private parts: Buffer[] = [];
  private partsBytes = 0;
  private startOffset = 0;
  private prevChunk: Buffer | undefined;
  /** Absolute stream offsets, for counting the bytes that are not part of any frame. */
  private streamPos = 0;
  private frameStartAbs = 0;
  private lastFrameEnd = 0;
  private failed = false;

  constructor(private readonly deps: SplitterDeps) {}

  push(chunk: Buffer): void {
    if (this.failed || chunk.length === 0) return;
    if (this.state !== SEEK) this.addPart(chunk);
    const len = chunk.length;
    let i = 0;
    while (i < len && !this.failed) {
      switch (this.state) {
        case SEEK: {
          if (!this.afterFF) {
            const ff = chunk.indexOf(0xff, i);
            if (ff < 0) {
              i = len;
              break;
            }
            this.afterFF = true;
            i = ff + 1;
            break;
          }
          const b = chunk[i]!;
          if (b === SOI) this.startFrame(chunk, i);
          else this.afterFF = b === 0xff;
          i += 1;
          break;
        }
        case MARKER: {
          const b = chunk[i]!;
          if (!this.afterFF) {
            if (b !== 0xff) {
              this.lost(); // not a marker where one must be: not JPEG; re-read this byte
              break;
            }
            this.afterFF = true;
            i += 1;
            break;
          }
          i = this.onMarker(chunk, i);
          break;
        }
        case LENGTH: {
          const b = chunk[i]!;
          i += 1;
          if (this.lengthHi < 0) {
            this.lengthHi = b;
            break;
          }
          const segment = (this.lengthHi << 8) | b;
          if (segment < 2) {
            this.lost();
            break;
          }
          this.remaining = segment - 2;
          this.state = SKIP;
          if (this.remaining === 0) this.segmentDone();
          break;
        }
        case SKIP: {
          const n = Math.min(this.remaining, len - i);
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) this.segmentDone();
          break;
        }
        case ENTROPY: {
          if (!this.afterFF) {
            const ff = chunk.indexOf(0xff, i);
            if (ff < 0) {
              i = len;
              break;
            }
            this.afterFF = true;
            i = ff + 1;
            break;
          }
          const b = chunk[i]!;
          if (b === 0x00 || isRst(b)) {
            // Stuffed FF or restart marker: still compressed data.
            this.afterFF = false;
            i += 1;
            break;
          }
          i = this.onMarker(chunk, i);
          break;
        }
      }
    }
    this.prevChunk = chunk;
    this.streamPos += len;
    if (!this.failed) this.checkLimits();
  }

  end(): void {
    if (this.failed) return;
    const garbage = (this.state === SEEK ? this.streamPos : this.frameStartAbs) - this.lastFrameEnd;
    const problems: string[] = [];
    if (garbage > 0) problems.push(`${garbage} bytes that are not JPEG data`);
    if (this.state !== SEEK) {
      problems.push(`a truncated JPEG frame (${this.streamPos - this.frameStartAbs} bytes, no end marker FFD9)`);
    }
    this.parts = [];
    this.partsBytes = 0;
    this.state = SEEK;
    this.lastFrameEnd = this.streamPos;
    if (problems.length > 0) this.deps.onError(new StreamError(`stream ended with ${problems.join(' and ')}; dropped`, false));
  }

  /** Handles the marker code at chunk[i] (the FF before it was seen); returns the next index. */
  private onMarker(chunk: Buffer, i: number): number {
    const b = chunk[i]!;
    if (b === 0xff) return i + 1; // fill byte before the code
    this.afterFF = false;
    if (b === EOI) {
      this.endFrame(i + 1);
      return i + 1;
    }
    if (b === SOI) {
      // A new image although this one never ended (truncated upstream): drop the partial one,
      // which counts as garbage, and start over at this SOI.
      this.lost();
      this.afterFF = true;
      return i; // SEEK sees the FF before and this D8
    }
    if (isRst(b) || b === 0x01) return i + 1; // standalone markers, no length
    if (b < 0xc0) {
      this.lost(); // reserved codes (and FF00 outside compressed data) do not occur in JPEG
      return i;
    }
    this.marker = b;
    this.lengthHi = -1;
    this.state = LENGTH;
    return i + 1;
  }

  private segmentDone(): void {
    this.afterFF = false;
    if (this.marker === SOS) {
      this.sawScan = true;
      this.state = ENTROPY;
    } else {
      this.state = MARKER;
    }
  }

  /** SOI's D8 is chunk[i]; its FF is the byte before, possibly the last of the previous chunk. */
  private startFrame(chunk: Buffer, i: number): void {
    this.parts = [];
    this.partsBytes = 0;
    if (i === 0 && this.prevChunk) {
      this.addPart(this.prevChunk);
      this.startOffset = this.prevChunk.length - 1;
    } else {
      this.startOffset = i - 1;
    }
    this.addPart(chunk);
    this.frameStartAbs = this.streamPos + i - 1;
    this.state = MARKER;
    this.afterFF = false;
    this.sawScan = false;
  }

  /** The frame ends just before `end` in the current (last) chunk. */
  private endFrame(end: number): void {
    const { parts, startOffset } = this;
    const last = parts[parts.length - 1]!;
    const size = this.partsBytes - startOffset - (last.length - end);
    const garbage = this.frameStartAbs - this.lastFrameEnd;
    this.lastFrameEnd = this.frameStartAbs + size;
    this.parts = [];
    this.partsBytes = 0;
    this.state = SEEK;
    this.afterFF = false;
    if (size > this.deps.maxFrameBytes) {
      this.fail(`a JPEG frame of ${size} bytes exceeds max_frame_bytes=${this.deps.maxFrameBytes}`);
      return;
    }
    if (garbage > 0) {
      this.deps.onError(new StreamError(`skipped ${garbage} bytes that are not JPEG data before a frame`, false));
    }
    if (!this.sawScan) {
      this.deps.onError(new StreamError(`dropped an empty JPEG frame (${size} bytes, no image data)`, false));
      return;
    }
    const data =
      parts.length === 1
        ? last.subarray(startOffset, end)
        : Buffer.concat([parts[0]!.subarray(startOffset), ...parts.slice(1, -1), last.subarray(0, end)], size);
    this.deps.onFrame(data);
  }

  /** The bytes since the frame start are not a JPEG after all; look for the next SOI. */
  private lost(): void {
    this.parts = [];
    this.partsBytes = 0;
    this.state = SEEK;
    this.afterFF = false;
  }

  private addPart(chunk: Buffer): void {
    this.parts.push(chunk);
    this.partsBytes += chunk.length;
  }

  private checkLimits(): void {
    const max = this.deps.maxFrameBytes;
    if (this.state !== SEEK && this.partsBytes - this.startOffset > max) {
      this.fail(`a JPEG frame grew beyond max_frame_bytes=${max} without an end marker`);
      return;
    }
    const noFrame = (this.state === SEEK ? this.streamPos : this.frameStartAbs) - this.lastFrameEnd;
    if (noFrame > max) {
      this.fail(`no JPEG frame in ${noFrame} bytes (more than max_frame_bytes=${max}): the stream is not MJPEG`);
    }
  }

  private fail(message: string): void {
    this.failed = true;
    this.parts = [];
    this.partsBytes = 0;
    this.deps.onError(new StreamError(message, true));
  }
}
