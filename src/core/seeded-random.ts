/**
 * Seeded pseudo-random numbers: the same sequence for the same seed on every machine and run,
 * so synthetic weights, benchmark frames and fuzz inputs are reproducible (a failing fuzz case
 * can be replayed from its seed). Not for anything secret.
 *
 * mulberry32: a tiny, fast 32-bit generator (passes SmallCrush), plenty for test data. No
 * per-call allocation, so 25 M draws take ~100 ms.
 */

/** Uniform floats in [0, 1), determined by `seed` (taken as an unsigned 32-bit integer). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` bytes from seededRandom(seed): noise for image and stream tests. Its own memory (not Node's shared pool). */
export function seededBytes(n: number, seed: number): Buffer {
  const rand = seededRandom(seed);
  const bytes = Buffer.alloc(n);
  for (let i = 0; i < n; i++) bytes[i] = Math.floor(rand() * 256);
  return bytes;
}
