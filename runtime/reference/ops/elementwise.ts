// Elementwise operators: unary math, binary arithmetic and comparisons with multidirectional
// broadcasting, Where, variadic Max/Min/Mean/Sum, activations, Cast/CastLike, Identity.

import { dtypeFromOnnx, isFloat, isInteger, onnxDtypeName, type DType } from '../../../ir/dtype.js';
import { attrFloat, attrInt, attrString } from '../../../ir/graph/attrs.js';
import { castScalar } from '../../../ir/numeric.js';
import type { Tensor } from '../../../ir/tensor.js';
import { erf } from '../erf.js';
import { fail, input, result, shapeStr, type Kernel, type KernelContext } from '../kernel.js';
import { broadcastShapes, broadcastTo, mapBinary } from '../strided.js';

type Unary = (x: number) => number;
type Binary = (x: number, y: number) => number;

function unary(f: (ctx: KernelContext) => Unary, opts: { floatOnly?: boolean } = {}): Kernel {
  return (ctx, ins) => {
    const x = input(ctx, ins, 0, 'X');
    if (opts.floatOnly && !isFloat(x.dtype)) fail(ctx, `input type ${x.dtype} is not a float type`);
    const g = f(ctx);
    const src = x.data;
    const out = new Float64Array(src.length);
    for (let i = 0; i < src.length; i++) out[i] = g(src[i]!);
    return [result(x.dtype, x.dims, out)];
  };
}

const sigmoid: Unary = (x) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));

function binaryOut(ctx: KernelContext, a: Tensor, b: Tensor, f: Binary, dtype: DType): Tensor {
  const dims = broadcastShapes(ctx, [a.dims, b.dims]);
  return result(dtype, dims, mapBinary(a.data, a.dims, b.data, b.dims, dims, f));
}

/** Arithmetic: output has A's dtype; `intF` replaces `f` when the inputs are integers. */
function arith(f: Binary, intF?: Binary): Kernel {
  return (ctx, ins) => {
    const a = input(ctx, ins, 0, 'A');
    const b = input(ctx, ins, 1, 'B');
    const g = intF && isInteger(a.dtype) ? intF : f;
    return [binaryOut(ctx, a, b, g, a.dtype)];
  };
}

function compare(f: Binary): Kernel {
  return (ctx, ins) => [binaryOut(ctx, input(ctx, ins, 0, 'A'), input(ctx, ins, 1, 'B'), f, 'bool')];
}

/** base^exp by squaring, exact for integer results below 2^53. */
function intPow(base: number, exp: number): number {
  if (!Number.isInteger(exp) || exp < 0 || !Number.isInteger(base)) return Math.pow(base, exp);
  let r = 1;
  let b = base;
  let e = exp;
  while (e > 0) {
    if (e & 1) r *= b;
    b *= b;
    e = Math.floor(e / 2);
  }
  return r;
}

const powKernel: Kernel = (ctx, ins) => {
  const a = input(ctx, ins, 0, 'X');
  const b = input(ctx, ins, 1, 'Y');
  const f: Binary = isInteger(a.dtype) || isInteger(b.dtype) ? intPow : Math.pow;
  return [binaryOut(ctx, a, b, f, a.dtype)];
};

const modKernel: Kernel = (ctx, ins) => {
  const a = input(ctx, ins, 0, 'A');
  const b = input(ctx, ins, 1, 'B');
  const fmod = attrInt(ctx.node, 'fmod', 0);
  if (isFloat(a.dtype) && fmod !== 1) fail(ctx, 'Mod on float inputs requires fmod=1', 'fmod');
  const f: Binary =
    fmod === 1
      ? (x, y) => (isInteger(a.dtype) && y === 0 ? 0 : x % y)
      : (x, y) => {
          if (y === 0) return 0;
          const r = x % y;
          return r !== 0 && r < 0 !== y < 0 ? r + y : r;
        };
  return [binaryOut(ctx, a, b, f, a.dtype)];
};

/** Max/Min/Sum/Mean over any number of broadcast inputs. */
function variadic(f: Binary, mean = false): Kernel {
  return (ctx, ins) => {
    const ts = ins.filter((t): t is Tensor => t !== null);
    if (ts.length === 0) fail(ctx, 'needs at least one input');
    const dims = broadcastShapes(ctx, ts.map((t) => t.dims));
    let acc = broadcastTo(ts[0]!.data, ts[0]!.dims, dims);
    if (ts.length === 1) acc = Float64Array.from(acc);
    for (let i = 1; i < ts.length; i++) acc = mapBinary(acc, dims, ts[i]!.data, ts[i]!.dims, dims, f);
    if (mean) for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! / ts.length;
    return [result(ts[0]!.dtype, dims, acc)];
  };
}

const nanMax: Binary = (x, y) => (Number.isNaN(x) || Number.isNaN(y) ? NaN : x >= y ? x : y);
const nanMin: Binary = (x, y) => (Number.isNaN(x) || Number.isNaN(y) ? NaN : x <= y ? x : y);

const whereKernel: Kernel = (ctx, ins) => {
  const c = input(ctx, ins, 0, 'condition');
  const x = input(ctx, ins, 1, 'X');
  const y = input(ctx, ins, 2, 'Y');
  const dims = broadcastShapes(ctx, [c.dims, x.dims, y.dims]);
  const cd = broadcastTo(c.data, c.dims, dims);
  const xd = broadcastTo(x.data, x.dims, dims);
  const yd = broadcastTo(y.data, y.dims, dims);
  const out = new Float64Array(cd.length);
  for (let i = 0; i < out.length; i++) out[i] = cd[i] ? xd[i]! : yd[i]!;
  return [result(x.dtype, dims, out)];
};

function castTo(x: Tensor, to: DType): Tensor {
  if (to === x.dtype) return x;
  const out = new Float64Array(x.data.length);
  const src = x.data;
  // Float to integer: values outside the target range are undefined in ONNX; castScalar wraps like C.
  for (let i = 0; i < out.length; i++) out[i] = castScalar(src[i]!, to);

  return result(to, x.dims, out);
}

const castKernel: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'input');
  const code = attrInt(ctx.node, 'to');
  const to = dtypeFromOnnx(code);
  if (!to) fail(ctx, `Cast to ${onnxDtypeName(code)} is not supported`, 'to');
  return [castTo(x, to)];
};

const castLikeKernel: Kernel = (ctx, ins) => [castTo(input(ctx, ins, 0, 'input'), input(ctx, ins, 1, 'target_type').dtype)];

const clipKernel: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'input');
  let lo = -Infinity;
  let hi = Infinity;
  if (ctx.opset < 11) {
    lo = attrFloat(ctx.node, 'min', -3.4028234663852886e38);
    hi = attrFloat(ctx.node, 'max', 3.4028234663852886e38);
  } else {
    if (ins[1]) lo = ins[1].data[0]!;
    if (ins[2]) hi = ins[2].data[0]!;
  }
  const out = new Float64Array(x.data.length);
  for (let i = 0; i < out.length; i++) {
    const v = x.data[i]!;
    out[i] = Number.isNaN(v) ? v : Math.min(Math.max(v, lo), hi);
  }
  return [result(x.dtype, x.dims, out)];
};

const swigluKernel: Kernel = (ctx, ins) => {
  const a = input(ctx, ins, 0, 'A');
  const b = input(ctx, ins, 1, 'B');
  if (a.dims.length !== b.dims.length || a.dims.some((d, i) => d !== b.dims[i])) {
    fail(ctx, `SwiGLU needs inputs of equal shape, got ${shapeStr(a.dims)} and ${shapeStr(b.dims)}`);
  }
  const alpha = attrFloat(ctx.node, 'alpha', 1);
  const out = new Float64Array(a.data.length);
  for (let i = 0; i < out.length; i++) {
    const x = a.data[i]!;
    out[i] = x * sigmoid(alpha * x) * b.data[i]!;
  }
  return [result(a.dtype, a.dims, out)];
};

/** Inference-mode Dropout: the input unchanged and an all-true mask. */
const dropoutKernel: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'data');
  return [x, result('bool', x.dims, new Float64Array(x.size).fill(1))];
};

function predicate(f: (x: number) => boolean): Kernel {
  return (ctx, ins) => {
    const x = input(ctx, ins, 0, 'X');
    const out = new Float64Array(x.size);
    for (let i = 0; i < out.length; i++) out[i] = f(x.data[i]!) ? 1 : 0;
    return [result('bool', x.dims, out)];
  };
}

const identity: Kernel = (ctx, ins) => [input(ctx, ins, 0, 'input')];

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

export const elementwiseKernels: Record<string, Kernel> = {
  Identity: identity,
  Neg: unary(() => (x) => -x),
  Abs: unary(() => Math.abs),
  Sign: unary(() => Math.sign),
  Floor: unary(() => Math.floor, { floatOnly: true }),
  Ceil: unary(() => Math.ceil, { floatOnly: true }),
  Round: unary(() => (x) => {
    const f = Math.floor(x);
    const d = x - f;
    return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
  }, { floatOnly: true }),
  Sqrt: unary(() => Math.sqrt, { floatOnly: true }),
  Reciprocal: unary(() => (x) => 1 / x, { floatOnly: true }),
  Exp: unary(() => Math.exp, { floatOnly: true }),
  Log: unary(() => Math.log, { floatOnly: true }),
  Tanh: unary(() => Math.tanh, { floatOnly: true }),
  Sin: unary(() => Math.sin, { floatOnly: true }),
  Cos: unary(() => Math.cos, { floatOnly: true }),
  Erf: unary(() => erf),
  Sigmoid: unary(() => sigmoid, { floatOnly: true }),
  Relu: unary(() => (x) => (x > 0 ? x : x === 0 || x < 0 ? 0 : x)),
  Softplus: unary(() => (x) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x))), { floatOnly: true }),
  LeakyRelu: unary((ctx) => {
    const alpha = attrFloat(ctx.node, 'alpha', 0.01);
    return (x) => (x >= 0 ? x : alpha * x);
  }, { floatOnly: true }),
  HardSigmoid: unary((ctx) => {
    const alpha = attrFloat(ctx.node, 'alpha', 0.2);
    const beta = attrFloat(ctx.node, 'beta', 0.5);
    return (x) => Math.max(0, Math.min(1, alpha * x + beta));
  }, { floatOnly: true }),
  Swish: unary((ctx) => {
    const alpha = attrFloat(ctx.node, 'alpha', 1);
    return (x) => x * sigmoid(alpha * x);
  }, { floatOnly: true }),
  Gelu: unary((ctx) => {
    const approx = attrString(ctx.node, 'approximate', 'none');
    if (approx === 'tanh') return (x) => 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
    if (approx !== 'none') fail(ctx, `unknown approximate '${approx}'`, 'approximate');
    return (x) => 0.5 * x * (1 + erf(x / Math.SQRT2));
  }, { floatOnly: true }),
  Not: unary(() => (x) => (x ? 0 : 1)),

  Add: arith((x, y) => x + y),
  Sub: arith((x, y) => x - y),
  Mul: arith((x, y) => x * y),
  Div: arith((x, y) => x / y, (x, y) => (y === 0 ? 0 : Math.trunc(x / y))),
  Pow: powKernel,
  Mod: modKernel,

  Equal: compare((x, y) => (x === y ? 1 : 0)),
  Less: compare((x, y) => (x < y ? 1 : 0)),
  Greater: compare((x, y) => (x > y ? 1 : 0)),
  LessOrEqual: compare((x, y) => (x <= y ? 1 : 0)),
  GreaterOrEqual: compare((x, y) => (x >= y ? 1 : 0)),
  And: compare((x, y) => (x && y ? 1 : 0)),
  Or: compare((x, y) => (x || y ? 1 : 0)),
  Xor: compare((x, y) => (!x !== !y ? 1 : 0)),

  Where: whereKernel,
  Max: variadic(nanMax),
  Min: variadic(nanMin),
  Sum: variadic((x, y) => x + y),
  Mean: variadic((x, y) => x + y, true),

  Clip: clipKernel,
  SwiGLU: swigluKernel,
  Cast: castKernel,
  CastLike: castLikeKernel,
  Dropout: dropoutKernel,
  IsNaN: predicate(Number.isNaN),
  IsInf: (ctx, ins) => {
    const neg = attrInt(ctx.node, 'detect_negative', 1) === 1;
    const pos = attrInt(ctx.node, 'detect_positive', 1) === 1;
    return predicate((x) => (x === Infinity && pos) || (x === -Infinity && neg))(ctx, ins);
  },
};


