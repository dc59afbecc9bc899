import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';

// The on-disk state of one download: `<dest>.part` (the bytes so far) and `<dest>.part.json`
// (what they are). The invariant that makes a resume after SIGKILL or power loss safe:
// every byte in the .part was served under the validator recorded in the sidecar. So the
// sidecar only ever changes while the .part is empty (truncate + fsync first, then the
// sidecar, atomically), and a .part without a readable, matching sidecar is thrown away.

export interface PartPaths {
  part: string;
  sidecar: string;
  sidecarTmp: string;
}

export function partPaths(dest: string): PartPaths {
  const part = `${dest}.part`;
  return { part, sidecar: `${part}.json`, sidecarTmp: `${part}.json.tmp` };
}

/** What the bytes in the .part are; a resume needs all of it to match the new request. */
export interface Sidecar {
  v: 1;
  url: string;
  size: number;
  sha256: string;
  /** The strong ETag, else Last-Modified, of the response the bytes came from: If-Range. */
  validator: string | null;
}

/** The sidecar, or undefined when missing, torn or from another format. */
export async function readSidecar(path: string): Promise<Sidecar | undefined> {
  let text: string;
  try {
    text = await fsp.readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const s = JSON.parse(text) as Partial<Sidecar>;
    if (s.v !== 1 || typeof s.url !== 'string' || typeof s.size !== 'number' || typeof s.sha256 !== 'string') return undefined;
    if (s.validator !== null && typeof s.validator !== 'string') return undefined;
    return { v: 1, url: s.url, size: s.size, sha256: s.sha256, validator: s.validator };
  } catch {
    return undefined;
  }
}

/** Write-to-temp, fsync, rename, fsync the directory: the sidecar is old or new, never torn. */
export async function writeSidecar(paths: PartPaths, data: Sidecar): Promise<void> {
  const fh = await fsp.open(paths.sidecarTmp, 'w');
  try {
    await fh.writeFile(JSON.stringify(data));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(paths.sidecarTmp, paths.sidecar);
  await fsyncDir(dirname(paths.sidecar));
}

/** Makes renames and unlinks in `dir` durable (they live in the directory, not the file). */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync an existing file by path (a .part written by an earlier attempt or process). */
export async function fsyncFile(path: string, flags: 'r+' | 'w' = 'r+'): Promise<void> {
  const fh = await fsp.open(path, flags);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** A file's size, or undefined when there is none. */
export async function fileSize(path: string): Promise<number | undefined> {
  try {
    return (await fsp.stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function removeQuietly(...paths: string[]): Promise<void> {
  for (const p of paths) await fsp.rm(p, { force: true });
}

/** A sha256 over the first `length` bytes of a file, streamed (models can be large). */
export async function hashPrefix(path: string, length: number, signal?: AbortSignal): Promise<Hash> {
  const hash = createHash('sha256');
  if (length === 0) return hash;
  const opts = signal ? { start: 0, end: length - 1, signal } : { start: 0, end: length - 1 };
  let seen = 0;
  for await (const chunk of createReadStream(path, opts)) {
    const buf = chunk as Buffer;
    hash.update(buf);
    seen += buf.length;
  }
  if (seen !== length) throw new Error(`${path}: read ${seen} of ${length} bytes while hashing`);
  return hash;
}

/** write(2) may write less than asked (a full disk, typically): loop, or fail. */
export async function writeAllAt(fh: fsp.FileHandle, buf: Uint8Array, position: number): Promise<void> {
  for (let off = 0; off < buf.length; ) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off, position + off);
    if (bytesWritten <= 0) throw new Error('write made no progress');
    off += bytesWritten;
  }
}

/**
 * Startup cleanup of the download temp directory: removes everything except, for each
 * destination in `keep` (downloads the caller still wants), the finished file itself (killed
 * after the rename, before the caller took it), its .part and .part.json (to resume), and the
 * directories leading to them (the updater downloads into tmp/<version>/). Sidecar temp files,
 * orphaned parts and anything else a crash left behind go. Returns the paths removed, relative
 * to `dir`, which must be a directory the updater owns (state_dir/tmp).
 */
export async function cleanTempDir(dir: string, keep: ReadonlySet<string>): Promise<string[]> {
  const root = resolve(dir);
  await fsp.mkdir(root, { recursive: true });
  const kept = new Set<string>();
  const parents = new Set<string>();
  for (const dest of keep) {
    const d = resolve(dest);
    const p = partPaths(d);
    kept.add(d).add(p.part).add(p.sidecar);
    // Bounded: at most one step per path component, up to `root` (or the filesystem root).
    for (let up = dirname(d); up.startsWith(`${root}${sep}`) && up !== dirname(up); up = dirname(up)) parents.add(up);
  }
  const removed: string[] = [];
  // Bounded: the walk only descends into the finite set of `parents`.
  const sweep = async (at: string): Promise<void> => {
    let changed = false;
    for (const entry of await fsp.readdir(at, { withFileTypes: true })) {
      const full = join(at, entry.name);
      if (kept.has(full)) continue;
      if (entry.isDirectory() && parents.has(full)) {
        await sweep(full);
        continue;
      }
      await fsp.rm(full, { recursive: true, force: true });
      removed.push(relative(root, full));
      changed = true;
    }
    if (changed) await fsyncDir(at);
  };
  await sweep(root);
  return removed;
}
