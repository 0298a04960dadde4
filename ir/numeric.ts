// Rounding of float64 values to the precision of narrower dtypes, and integer wrap-around.
// The reference interpreter computes in float64 and applies these at op boundaries, so an
// fp16 or int8 graph gives what a runtime using those types would give.

import type { DType } from './dtype.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function roundToFloat16(x: number): number {
  return halfBitsToFloat(floatToHalfBits(x));
}

/** IEEE binary16 bits of x, rounding to nearest even. */
export function floatToHalfBits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  // Work from the double to round once (float32 rounding first could double-round).
  const ax = Math.abs(x);
  if (ax >= 65520) return sign | 0x7c00;
  if (ax < 2 ** -25) return sign; // rounds to zero (2^-25 is the halfway point to the smallest subnormal)
  if (ax < 2 ** -14) {
    // subnormal: value = m * 2^-24
    const m = roundHalfEven(ax / 2 ** -24);
    return sign | m;
  }
  const e = Math.floor(Math.log2(ax));
  let eAdj = e;
  let scaled = ax / 2 ** e;
  if (scaled >= 2) { scaled /= 2; eAdj++; } else if (scaled < 1) { scaled *= 2; eAdj--; }
  let m = roundHalfEven((scaled - 1) * 1024);
  if (m === 1024) { m = 0; eAdj++; }
  if (eAdj > 15) return sign | 0x7c00;
  mant = m;
  return sign | ((eAdj + 15) << 10) | mant;
}

export function halfBitsToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

export function bfloat16BitsToFloat(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0]!;
}

export function floatToBfloat16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  if (Number.isNaN(x)) return 0x7fc0;
  const lsb = (b >>> 16) & 1;
  return ((b + 0x7fff + lsb) >>> 16) & 0xffff;
}

function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

const INT_RANGE: Partial<Record<DType, [number, number]>> = {
  int8: [-128, 256], uint8: [0, 256], int16: [-32768, 65536], uint16: [0, 65536],
  int32: [-2147483648, 4294967296], uint32: [0, 4294967296],
};

/** Round or wrap a float64 value to what `dtype` can hold (the C semantics of a cast). */
export function castScalar(x: number, dtype: DType): number {
  switch (dtype) {
    case 'float64': return x;
    case 'float32': return Math.fround(x);
    case 'float16': return roundToFloat16(x);
    case 'bfloat16': return bfloat16BitsToFloat(floatToBfloat16Bits(x));
    case 'bool': return x !== 0 && !Number.isNaN(x) ? 1 : 0;
    case 'int64': case 'uint64': {
      if (!Number.isFinite(x)) return 0;
      const t = Math.trunc(x);
      return dtype === 'uint64' && t < 0 ? t + 2 ** 64 : t;
    }
    default: {
      if (!Number.isFinite(x)) return 0;
      const [lo, span] = INT_RANGE[dtype]!;
      let t = Math.trunc(x);
      t = ((((t - lo) % span) + span) % span) + lo;
      return t;
    }
  }
}

export function castArray(a: Float64Array, dtype: DType): Float64Array {
  if (dtype === 'float64') return a;
  for (let i = 0; i < a.length; i++) a[i] = castScalar(a[i]!, dtype);
  return a;
}
