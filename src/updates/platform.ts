import { readFileSync } from 'node:fs';
import { arch, cpus } from 'node:os';
import { createRequire } from 'node:module';

/**
 * The CPU a reference was computed on, and which family of onnxruntime's int8 kernels it gets:
 * MLAS picks AVX2 (u8s8 through 16-bit saturating multiply-adds), AVX-512/AVX-VNNI (exact int32
 * dot products) or NEON/dotprod on arm64, and int8 results differ between those families. The
 * release records the publisher's; a device that disagrees says both in its refusal.
 */
export interface Platform {
  arch: string;
  cpu: string;
  kernels: string;
  onnxruntime: string;
}

function cpuFlags(): Set<string> {
  try {
    const text = readFileSync('/proc/cpuinfo', 'utf8');
    const line = /^(?:flags|Features)\s*:\s*(.*)$/m.exec(text)?.[1] ?? '';
    return new Set(line.split(/\s+/).filter(Boolean));
  } catch {
    return new Set();
  }
}

export function kernelFamily(architecture: string, flags: ReadonlySet<string>): string {
  if (architecture === 'x64') {
    if (flags.has('avx512_vnni') || flags.has('avx_vnni')) return 'x64-vnni';
    if (flags.has('avx512bw')) return 'x64-avx512';
    if (flags.has('avx2')) return 'x64-avx2';
    return 'x64-sse';
  }
  if (architecture === 'arm64') return flags.has('asimddp') ? 'arm64-dotprod' : 'arm64-neon';
  return architecture;
}

function onnxruntimeVersion(): string {
  try {
    return (createRequire(import.meta.url)('onnxruntime-node/package.json') as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function currentPlatform(): Platform {
  const architecture = arch();
  return {
    arch: architecture,
    cpu: cpus()[0]?.model?.trim() || 'unknown',
    kernels: kernelFamily(architecture, cpuFlags()),
    onnxruntime: onnxruntimeVersion(),
  };
}

export const describePlatform = (p: Partial<Platform>): string => `${p.kernels ?? p.arch ?? 'unknown CPU'}${p.cpu ? ` (${p.cpu})` : ''}`;
