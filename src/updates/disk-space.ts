import { statfs } from 'node:fs/promises';

// A full disk during an update: recognised (ENOSPC, EDQUOT, also when wrapped in a cause),
// measured (statfs) and described in one line for B/D/model.

const FULL = new Set(['ENOSPC', 'EDQUOT']);

/** True for "no space left" and "quota exceeded", also when wrapped as an error's cause. */
export function isDiskFull(err: unknown): boolean {
  // Bounded: a cause chain is short; 10 links is far more than any wrapper here makes.
  for (let e = err, depth = 0; e !== undefined && e !== null && depth < 10; e = (e as { cause?: unknown }).cause, depth++) {
    if (FULL.has((e as NodeJS.ErrnoException).code ?? '')) return true;
  }
  return false;
}

/** The errno name of a disk-full error ('ENOSPC' or 'EDQUOT'), else undefined. */
export function diskFullCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e !== undefined && e !== null && depth < 10; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code && FULL.has(code)) return code;
  }
  return undefined;
}

/** Bytes an unprivileged process may still write on the file system of `path`; undefined when unknown. */
export async function freeBytes(path: string): Promise<number | undefined> {
  try {
    const s = await statfs(path);
    return s.bavail * s.bsize;
  } catch {
    return undefined;
  }
}

/** `12582912 bytes (12.0 MiB)`: exact for logs and scripts, readable for people. */
export function describeBytes(n: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let unit = 0;
  while (v >= 1024 && unit < units.length - 1) {
    v /= 1024;
    unit++;
  }
  return n < 1024 ? `${n} bytes` : `${n} bytes (${v.toFixed(1)} ${units[unit]})`;
}
