// Conversion between ONNX raw_data (little-endian, row-major) and the IR's float64 tensor data.
// float16/bfloat16 are IEEE/brain-float bit patterns; bool is one byte per element.

import { byteSize, type DType } from './dtype.js';
import { bfloat16BitsToFloat, floatToBfloat16Bits, floatToHalfBits, halfBitsToFloat } from './numeric.js';

// Typed-array views below read the host's byte order, which must then be ONNX's (little-endian).
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('fhec needs a little-endian host to read ONNX raw_data');

/** A view of `bytes` as elements of `size` bytes, copying only when the bytes are not aligned for it. */
function view<T>(bytes: Uint8Array, size: number, make: (buf: ArrayBufferLike, off: number, n: number) => T): T {
  // (Buffer.slice does not copy, hence the explicit copy.)
  const b = bytes.byteOffset % size === 0 ? bytes : new Uint8Array(bytes);
  return make(b.buffer, b.byteOffset, b.byteLength / size);
}

/** Decodes `n` elements of `dtype` from raw little-endian bytes (bytes.length must be n * byteSize). */
export function decodeRaw(bytes: Uint8Array, dtype: DType, n: number): Float64Array {
  const out = new Float64Array(n);
  switch (dtype) {
    case 'float32': out.set(view(bytes, 4, (b, o, k) => new Float32Array(b, o, k))); break;
    case 'float64': out.set(view(bytes, 8, (b, o, k) => new Float64Array(b, o, k))); break;
    case 'int8': out.set(new Int8Array(bytes.buffer, bytes.byteOffset, n)); break;
    case 'uint8': out.set(bytes.subarray(0, n)); break;
    case 'bool': for (let i = 0; i < n; i++) out[i] = bytes[i] ? 1 : 0; break;
    case 'int16': out.set(view(bytes, 2, (b, o, k) => new Int16Array(b, o, k))); break;
    case 'uint16': out.set(view(bytes, 2, (b, o, k) => new Uint16Array(b, o, k))); break;
    case 'int32': out.set(view(bytes, 4, (b, o, k) => new Int32Array(b, o, k))); break;
    case 'uint32': out.set(view(bytes, 4, (b, o, k) => new Uint32Array(b, o, k))); break;
    case 'float16': {
      const h = view(bytes, 2, (b, o, k) => new Uint16Array(b, o, k));
      for (let i = 0; i < n; i++) out[i] = halfBitsToFloat(h[i]!);
      break;
    }
    case 'bfloat16': {
      const h = view(bytes, 2, (b, o, k) => new Uint16Array(b, o, k));
      for (let i = 0; i < n; i++) out[i] = bfloat16BitsToFloat(h[i]!);
      break;
    }
    case 'int64': {
      const v = view(bytes, 8, (b, o, k) => new BigInt64Array(b, o, k));
      for (let i = 0; i < n; i++) out[i] = Number(v[i]!);
      break;
    }
    case 'uint64': {
      const v = view(bytes, 8, (b, o, k) => new BigUint64Array(b, o, k));
      for (let i = 0; i < n; i++) out[i] = Number(v[i]!);
      break;
    }
  }
  return out;
}

/** Encodes float64 tensor data as ONNX raw_data of `dtype` (values are assumed already in range). */
export function encodeRaw(data: Float64Array, dtype: DType): Uint8Array {
  const n = data.length;
  const out = new Uint8Array(n * byteSize(dtype));
  switch (dtype) {
    case 'float32': new Float32Array(out.buffer).set(data); break;
    case 'float64': new Float64Array(out.buffer).set(data); break;
    case 'int8': new Int8Array(out.buffer).set(data); break;
    case 'uint8': out.set(data); break;
    case 'bool': for (let i = 0; i < n; i++) out[i] = data[i] ? 1 : 0; break;
    case 'int16': new Int16Array(out.buffer).set(data); break;
    case 'uint16': new Uint16Array(out.buffer).set(data); break;
    case 'int32': new Int32Array(out.buffer).set(data); break;
    case 'uint32': new Uint32Array(out.buffer).set(data); break;
    case 'float16': {
      const h = new Uint16Array(out.buffer);
      for (let i = 0; i < n; i++) h[i] = floatToHalfBits(data[i]!);
      break;
    }
    case 'bfloat16': {
      const h = new Uint16Array(out.buffer);
      for (let i = 0; i < n; i++) h[i] = floatToBfloat16Bits(data[i]!);
      break;
    }
    case 'int64': {
      const v = new BigInt64Array(out.buffer);
      for (let i = 0; i < n; i++) v[i] = toBigInt(data[i]!, INT64_MIN, INT64_MAX);
      break;
    }
    case 'uint64': {
      const v = new BigUint64Array(out.buffer);
      for (let i = 0; i < n; i++) v[i] = toBigInt(data[i]!, 0n, UINT64_MAX);
      break;
    }
  }
  return out;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

/**
 * Saturating conversion: INT64_MAX (a common Slice end) reads back as the double 2^63, which must be
 * written as INT64_MAX again, not wrap to INT64_MIN.
 */
function toBigInt(x: number, lo: bigint, hi: bigint): bigint {
  if (Number.isNaN(x)) return 0n;
  if (x === Infinity) return hi;
  if (x === -Infinity) return lo;
  const b = BigInt(Math.trunc(x));
  return b > hi ? hi : b < lo ? lo : b;
}
