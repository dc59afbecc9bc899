import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

export const IMAGE_EXTENSIONS = /\.(jpe?g|png|webp|gif|tiff?|bmp|avif|heic|heif)$/i;

/** Expands files and directories (their image files, name order) into a list of files. */
export async function expandImagePaths(paths: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    const info = await stat(p).catch((err: NodeJS.ErrnoException) => {
      throw new Error(err.code === 'ENOENT' ? `no such file or directory: ${p}` : `${p}: ${err.message}`);
    });
    if (info.isDirectory()) {
      const names = (await readdir(p)).filter((n) => !n.startsWith('.') && IMAGE_EXTENSIONS.test(n)).sort();
      out.push(...names.map((n) => join(p, n)));
    } else {
      out.push(p);
    }
  }
  return out;
}
