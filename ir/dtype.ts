// Element types of graph values. One string name per ONNX TensorProto.DataType we handle.
// Every numeric tensor is held in a Float64Array (see tensor.ts); the dtype says how values wrap/round.

export type DType =
  | 'float32' | 'float16' | 'bfloat16' | 'float64'
  | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64'
  | 'bool';

export const ALL_DTYPES: readonly DType[] = [
  'float32', 'float16', 'bfloat16', 'float64',
  'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'bool',
];

/** ONNX TensorProto.DataType codes. */
export const ONNX_DTYPE_CODE: Record<DType, number> = {
  float32: 1, uint8: 2, int8: 3, uint16: 4, int16: 5, int32: 6, int64: 7, bool: 9,
  float16: 10, float64: 11, uint32: 12, uint64: 13, bfloat16: 16,
};

const CODE_TO_DTYPE = new Map<number, DType>(
  Object.entries(ONNX_DTYPE_CODE).map(([k, v]) => [v, k as DType]),
);

/** Names of ONNX data types we do not handle, for error messages. */
const UNSUPPORTED_ONNX_NAMES: Record<number, string> = {
  0: 'undefined', 8: 'string', 14: 'complex64', 15: 'complex128',
  17: 'float8e4m3fn', 18: 'float8e4m3fnuz', 19: 'float8e5m2', 20: 'float8e5m2fnuz',
  21: 'uint4', 22: 'int4', 23: 'float4e2m1', 24: 'float8e8m0', 25: 'uint2', 26: 'int2',
};

export function dtypeFromOnnx(code: number): DType | undefined {
  return CODE_TO_DTYPE.get(code);
}

export function onnxDtypeName(code: number): string {
  return CODE_TO_DTYPE.get(code) ?? UNSUPPORTED_ONNX_NAMES[code] ?? `dtype#${code}`;
}

export function isFloat(d: DType): boolean {
  return d === 'float32' || d === 'float16' || d === 'bfloat16' || d === 'float64';
}

export function isInteger(d: DType): boolean {
  return !isFloat(d) && d !== 'bool';
}

/** Size in bytes of one element as stored in ONNX raw_data. */
export function byteSize(d: DType): number {
  switch (d) {
    case 'float64': case 'int64': case 'uint64': return 8;
    case 'float32': case 'int32': case 'uint32': return 4;
    case 'float16': case 'bfloat16': case 'int16': case 'uint16': return 2;
    case 'int8': case 'uint8': case 'bool': return 1;
  }
}

/** Short names used by the textual IR (f32, i64, ...). */
export const DTYPE_SHORT: Record<DType, string> = {
  float32: 'f32', float16: 'f16', bfloat16: 'bf16', float64: 'f64',
  int8: 'i8', uint8: 'u8', int16: 'i16', uint16: 'u16', int32: 'i32', uint32: 'u32',
  int64: 'i64', uint64: 'u64', bool: 'bool',
};

const SHORT_TO_DTYPE = new Map<string, DType>(
  Object.entries(DTYPE_SHORT).map(([k, v]) => [v, k as DType]),
);

export function dtypeFromShort(s: string): DType | undefined {
  return SHORT_TO_DTYPE.get(s);
}
