import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';

export interface ModelIdentity {
  name: string;
  version: string;
  sha256: string;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The model file is missing, not a file, or empty: a configuration problem (exit 78), not a crash. */
export class ModelFileError extends Error {
  override name = 'ModelFileError';
}

/** Name and version shown in every prediction; the version defaults to the hash prefix. */
export async function identifyModel(path: string, name?: string, version?: string): Promise<ModelIdentity> {
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ModelFileError(code === 'ENOENT' ? `model file not found: ${path}` : `cannot read model file ${path}: ${(err as Error).message}`);
  }
  if (!info.isFile()) throw new ModelFileError(`model path is not a file: ${path}`);
  if (info.size === 0) throw new ModelFileError(`model file is empty: ${path}`);
  const sha256 = await sha256File(path);
  return { name: name ?? basename(path).replace(/\.onnx$/i, ''), version: version ?? sha256.slice(0, 12), sha256 };
}
