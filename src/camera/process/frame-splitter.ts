/**
 * What a splitter reports while cutting a child process's stdout into frames. A splitter sees
 * only bytes: it knows nothing of processes, cameras or restarts; the supervisor decides what
 * an error means for the process (see `fatal`).
 */

/** A problem in the byte stream itself. */
export class StreamError extends Error {
  override name = 'StreamError';
  constructor(
    message: string,
    /**
     * true: the stream cannot be trusted any more (a frame over max_frame_bytes, no frame
     * boundary in sight); the splitter ignores further input and the process must be restarted.
     * false: some bytes were dropped (garbage, a truncated frame); later frames are fine.
     */
    readonly fatal: boolean,
  ) {
    super(message);
  }
}

export interface SplitterDeps {
  /** A frame (or a run of bytes without one) larger than this is a fatal error. */
  maxFrameBytes: number;
  /** One complete frame. The buffer is the caller's to keep: it is never reused by the splitter. */
  onFrame: (data: Buffer) => void;
  onError: (err: StreamError) => void;
}

export interface FrameSplitter {
  /** Feeds the next chunk of the stream (chunks are kept, not copied, until their frame is out). */
  push(chunk: Buffer): void;
  /** The stream has ended: reports a partial frame, if any. */
  end(): void;
}
