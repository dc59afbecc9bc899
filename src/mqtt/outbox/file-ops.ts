import * as fsp from 'node:fs/promises';

// The file-system seam of the disk store: the few calls it makes, so that tests can make them
// fail (ENOSPC, EACCES) exactly where they want.

/** The part of a FileHandle the store uses. */
export interface LogFile {
  write(buffer: Buffer, offset: number, length: number): Promise<{ bytesWritten: number }>;
  datasync(): Promise<void>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

/** The part of node:fs/promises the store uses. */
export interface FileOps {
  open(path: string, flags: string): Promise<LogFile>;
  readFile(path: string): Promise<Buffer>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  mkdir(path: string, options: { recursive: true }): Promise<unknown>;
}

export const realFs: FileOps = fsp;

/** write(2) may write less than asked (a full disk, typically): loop, or fail. */
export async function writeAll(file: LogFile, buf: Buffer): Promise<void> {
  for (let off = 0; off < buf.length; ) {
    const { bytesWritten } = await file.write(buf, off, buf.length - off);
    if (bytesWritten <= 0) throw new Error('outbox store: write made no progress');
    off += bytesWritten;
  }
}

export function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}
