/**
 * Cuts a stream of packed RGB24 frames (`ffmpeg -f rawvideo -pix_fmt rgb24`, GStreamer's
 * `video/x-raw,format=RGB ! fdsink`) into frames of exactly width*height*3 bytes. The stream
 * has no markers, so a lost byte would shift every later frame: the child's stdout is a pipe,
 * which loses nothing, and a new splitter is made for every process.
 *
 * Copies: a frame lying inside one chunk is a subarray of it; otherwise its bytes are copied,
 * once, into a Buffer allocated for that frame (pipe chunks are 64 KiB at most, so frames of
 * the usual model sizes, 150 KiB for 224x224, are always assembled this way).
 */
import { StreamError, type FrameSplitter, type SplitterDeps } from './frame-splitter.js';

export type RawSplitterDeps = SplitterDeps & { width: number; height: number };

export class RawSplitter implements FrameSplitter {
  private current: Buffer | undefined;
  private filled = 0;
  private failed = false;

  constructor(private readonly deps: RawSplitterDeps) {}

  /** Bytes per frame. */
  get frameBytes(): number {
    return this.deps.width * this.deps.height * 3;
  }

  push(chunk: Buffer): void {
    if (this.failed) return;
    const size = this.frameBytes;
    if (size > this.deps.maxFrameBytes) {
      // Normally refused before the process is started; kept so the splitter is safe alone.
      this.failed = true;
      this.deps.onError(
        new StreamError(`raw frames of ${this.deps.width}x${this.deps.height} RGB (${size} bytes) exceed max_frame_bytes=${this.deps.maxFrameBytes}`, true),
      );
      return;
    }
    let off = 0;
    while (off < chunk.length) {
      if (this.filled === 0 && chunk.length - off >= size) {
        this.deps.onFrame(chunk.subarray(off, off + size));
        off += size;
        continue;
      }
      this.current ??= Buffer.allocUnsafe(size);
      const n = Math.min(size - this.filled, chunk.length - off);
      chunk.copy(this.current, this.filled, off, off + n);
      this.filled += n;
      off += n;
      if (this.filled === size) {
        const frame = this.current;
        this.current = undefined;
        this.filled = 0;
        this.deps.onFrame(frame);
      }
    }
  }

  end(): void {
    if (this.failed || this.filled === 0) return;
    const got = this.filled;
    this.current = undefined;
    this.filled = 0;
    this.deps.onError(
      new StreamError(
        `stream ended mid-frame: ${got} of ${this.frameBytes} bytes of a ${this.deps.width}x${this.deps.height} RGB frame; dropped`,
        false,
      ),
    );
  }
}
