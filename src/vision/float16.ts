/**
 * IEEE 754 binary16 <-> binary32 conversion. Node 20 has no Float16Array, so fp16 tensors
 * travel as Uint16Array bit patterns (what onnxruntime-node expects for 'float16' tensors).
 */

// One shared scratch word to reinterpret a float32's bits without allocating per call.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * Bits of the float16 nearest to `v` (round-to-nearest-even, as hardware casts do).
 * Overflow gives ±Infinity, NaN stays a (quiet) NaN, tiny values become subnormals or ±0.
 */
export function float32ToFloat16Bits(v: number): number {
  // Go through float32 first: that is what a model's Cast(float->float16) sees, and it keeps
  // the rounding to a single well-defined step from a 24-bit mantissa.
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;

  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15; // rebias
  if (e >= 0x1f) return sign | 0x7c00;

  if (e <= 0) {
    // Subnormal half: value = m * 2^-24. Below half of 2^-24 everything rounds to zero.
    if (e < -10) return sign;
    const full = mant | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rem = full & ((1 << shift) - 1);
    let m = full >>> shift;
    if (rem > half || (rem === half && (m & 1) === 1)) m++; // a carry into 0x400 is the right normal
    return sign | m;
  }

  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa bumps the exponent, and from the top exponent gives Infinity:
  // both are the correctly rounded results.
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++;
  return sign | h;
}

/** The value of a float16 bit pattern (exact: every float16 is representable as a double). */
export function float16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant !== 0 ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Element-wise float32ToFloat16Bits, for building 'float16' input tensors. */
export function toFloat16Array(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = float32ToFloat16Bits(values[i]!);
  return out;
}

/** Element-wise float16BitsToFloat32, for reading 'float16' output tensors. */
export function fromFloat16Array(bits: ArrayLike<number>): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = float16BitsToFloat32(bits[i]!);
  return out;
}
