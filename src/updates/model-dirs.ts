/**
 * The version directories of the model store on disk (model-store.ts explains how the steps
 * combine into crash safety): filled under `<version>.partial/`, every file and directory
 * fsynced, a `.complete` marker with each file's sha256 written last, then renamed into place.
 * fsync works on a read-only descriptor for files and directories alike on Linux.
 */
import { cp, mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { sha256File } from '../inference/model-identity.js';

export interface ModelFiles {
  model: string;
  labels: string;
  modelJson: string;
  manifest: string;
  sig: string;
  /** A directory of validation images (as model.json's `validation` entries name them). */
  validation?: string | undefined;
}

/** The fixed names inside a version dir. */
export const NAMES = { model: 'model.onnx', labels: 'labels.txt', modelJson: 'model.json', manifest: 'manifest.json', sig: 'manifest.json.sig' } as const;
const COMPLETE = '.complete';
/** Names of dirs that are not (yet, or any more) a version: start() deletes them. */
export const SCRATCH = /\.(partial|deleting|tmp)$/;
/**
 * The longest version the store holds (a directory name, with room for the `.partial` and
 * `.deleting` suffixes). The release manifest schema applies isValidVersionName too
 * (manifest.ts), so a release the store could not hold is refused before any download.
 */
export const MAX_VERSION_LENGTH = 128;
const VERSION = new RegExp(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,${MAX_VERSION_LENGTH - 1}}$`);

export interface CompleteMarker {
  version: string;
  installedAt: number;
  /** Relative path -> sha256 of every file in the dir. */
  files: Record<string, string>;
}

export function isValidVersionName(version: string): boolean {
  return VERSION.test(version) && !SCRATCH.test(version) && version !== 'current';
}

export async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function writeDurable(path: string, data: string): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Every file under dir (relative paths), with each file and directory fsynced on the way. */
async function syncTree(dir: string, base = dir): Promise<string[]> {
  const files: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      files.push(...(await syncTree(path, base)));
    } else if (e.isFile()) {
      await fsyncPath(path);
      files.push(relative(base, path));
    }
  }
  await fsyncPath(dir);
  return files;
}

/** Renames (same file system: no second copy of a big model on an SD card) or copies (EXDEV). */
async function move(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await cp(from, to, { recursive: true });
  }
}

/** Moves `files` into `models/<version>/`, durably; the rename out of `.partial` is the commit. */
export async function writeVersionDir(models: string, version: string, files: ModelFiles, installedAt: number): Promise<void> {
  const partial = join(models, `${version}.partial`);
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial);
  for (const key of Object.keys(NAMES) as (keyof typeof NAMES)[]) await move(files[key], join(partial, NAMES[key]));
  if (files.validation) await move(files.validation, join(partial, 'validation'));
  const hashes: Record<string, string> = {};
  for (const f of await syncTree(partial)) hashes[f] = await sha256File(join(partial, f));
  const marker: CompleteMarker = { version, installedAt, files: hashes };
  await writeDurable(join(partial, COMPLETE), JSON.stringify(marker));
  await fsyncPath(partial);
  await rename(partial, join(models, version));
  await fsyncPath(models);
}

/** The `.complete` marker of a committed version dir, or undefined (not a complete version). */
export async function readMarker(models: string, version: string): Promise<CompleteMarker | undefined> {
  try {
    const m = JSON.parse(await readFile(join(models, version, COMPLETE), 'utf8')) as Partial<CompleteMarker>;
    return m.version === version && typeof m.installedAt === 'number' && m.files ? (m as CompleteMarker) : undefined;
  } catch {
    return undefined;
  }
}

/** undefined when every file still has its recorded sha256; else what is wrong. */
export async function verifyVersionDir(models: string, version: string): Promise<string | undefined> {
  const m = await readMarker(models, version);
  if (!m) return 'not installed';
  for (const [file, sha] of Object.entries(m.files)) {
    const actual = await sha256File(join(models, version, file)).catch((err: Error) => err.message);
    if (actual !== sha) return `${file} does not match its recorded sha256`;
  }
  return undefined;
}

/** Renamed out of the way first (atomic), so a half-deleted dir never passes for a version. */
export async function removeVersionDir(models: string, version: string): Promise<void> {
  const doomed = join(models, `${version}.deleting`);
  await rename(join(models, version), doomed);
  await rm(doomed, { recursive: true, force: true });
}
