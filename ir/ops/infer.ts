// Type and shape inference rules for the ops we import: output dtypes and (possibly symbolic) shapes
// from input dtypes, shapes, attributes and, for shape-valued inputs, their known values.
//
// "Known values" carry small int64 tensors through shape arithmetic even when some elements are
// symbolic (Shape of [1, "seq", 64] is the value [1, "seq", 64]); that is how Reshape targets built
// by Shape/Gather/Concat get symbolic output shapes before any dim is bound.

import type { DType } from '../dtype.js';
import { dtypeFromOnnx } from '../dtype.js';
import { FhecError, nodeLabel } from '../errors.js';
import { attrInt, attrInts, attrTensor, hasAttr } from '../graph/attrs.js';
import type { Dim, Node, Shape } from '../graph/types.js';
import { BroadcastError, broadcastShapes } from './broadcast.js';
import { splitSizes } from './split-sizes.js';

/** A known (small, integer) tensor value whose elements may be symbolic dims. */
export interface KnownValue {
  dims: number[];
  data: Dim[];
}

export interface InferInput {
  dtype: DType;
  shape: Shape;
  value?: KnownValue;
}

export interface InferResult {
  dtype: DType;
  shape: Shape;
  value?: KnownValue;
}

type Rule = (node: Node, inputs: (InferInput | null)[], opset: number) => InferResult[];

const BOOL_OPS = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Not', 'Xor', 'IsNaN', 'IsInf']);
const UNARY_SAME = [
  'Neg', 'Sqrt', 'Reciprocal', 'Exp', 'Log', 'Tanh', 'Sigmoid', 'Relu', 'Erf', 'Sin', 'Cos', 'Abs', 'Floor', 'Ceil',
  'Identity', 'Softmax', 'LogSoftmax', 'HardSigmoid', 'Gelu', 'Swish', 'Clip', 'Not', 'Round', 'Sign', 'IsNaN', 'IsInf',
  'LeakyRelu', 'Elu', 'Softplus', 'FastGelu', 'QuickGelu', 'BiasGelu',
];
const BROADCAST = ['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Mod', 'Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual',
  'And', 'Or', 'Xor', 'Max', 'Min', 'Mean', 'Sum', 'PRelu', 'BitShift'];

const rules = new Map<string, Rule>();

function def(ops: string[], rule: Rule, domain = ''): void {
  for (const op of ops) rules.set(`${domain}::${op}`, rule);
}

const unknown = (dtype: DType): InferResult => ({ dtype, shape: undefined });

function req(inputs: (InferInput | null)[], i: number, node: Node): InferInput {
  const x = inputs[i];
  if (!x) throw new FhecError(`input ${i} is required`, { node: nodeLabel(node) });
  return x;
}

function normAxis(axis: number, rank: number, node: Node): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new FhecError(`axis ${axis} is out of range for rank ${rank}`, { node: nodeLabel(node) });
  return a;
}

function isConcrete(v: KnownValue | undefined): v is { dims: number[]; data: number[] } {
  return !!v && v.data.every((d) => typeof d === 'number');
}

function dimMul(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a * b;
  if (a === 1) return b;
  if (b === 1) return a;
  return null;
}

// ---- elementwise -------------------------------------------------------------------------------

def(UNARY_SAME, (node, inputs) => {
  const x = req(inputs, 0, node);
  const dtype = BOOL_OPS.has(node.op) || node.op === 'IsNaN' || node.op === 'IsInf' ? 'bool' : x.dtype;
  // Identity passes a known shape value through (ONNX function bodies alias shape values with it).
  return [{ dtype, shape: x.shape && [...x.shape], value: node.op === 'Identity' ? x.value : undefined }];
});

def(BROADCAST, (node, inputs) => {
  const present = inputs.filter((x): x is InferInput => x !== null);
  let shape: Shape;
  try {
    shape = broadcastShapes(present.map((x) => x.shape));
  } catch (e) {
    if (e instanceof BroadcastError) {
      throw new FhecError(`${e.message} (input shapes ${present.map((x) => fmt(x.shape)).join(', ')})`, { node: nodeLabel(node) });
    }
    throw e;
  }
  const dtype: DType = BOOL_OPS.has(node.op) ? 'bool' : present[0]!.dtype;
  const result: InferResult = { dtype, shape };
  // Arithmetic on known shape values (e.g. seq + past), elementwise with broadcasting of scalars.
  const vals = present.map((x) => x.value);
  if (present.length === 2 && vals.every((v) => v !== undefined) && shape && shape.every((d) => typeof d === 'number')) {
    const a = vals[0]!, b = vals[1]!;
    const n = Math.max(a.data.length, b.data.length);
    if ((a.data.length === n || a.data.length === 1) && (b.data.length === n || b.data.length === 1)) {
      const data: Dim[] = [];
      for (let i = 0; i < n; i++) {
        const x = a.data[a.data.length === 1 ? 0 : i]!, y = b.data[b.data.length === 1 ? 0 : i]!;
        data.push(symbolicArith(node.op, x, y));
      }
      if (data.every((d) => d !== undefined)) result.value = { dims: shape as number[], data };
    }
  }
  return [result];
});

function symbolicArith(op: string, x: Dim, y: Dim): Dim {
  if (typeof x === 'number' && typeof y === 'number') {
    switch (op) {
      case 'Add': return x + y;
      case 'Sub': return x - y;
      case 'Mul': return x * y;
      case 'Div': return Math.trunc(x / y);
      case 'Equal': return x === y ? 1 : 0;
      case 'Less': return x < y ? 1 : 0;
      case 'Greater': return x > y ? 1 : 0;
      case 'Max': return Math.max(x, y);
      case 'Min': return Math.min(x, y);
      default: return null;
    }
  }
  if (op === 'Mul') return dimMul(x, y);
  if (op === 'Add' && (x === 0 || y === 0)) return x === 0 ? y : x;
  if ((op === 'Sub' || op === 'Div') && (y === 0 || (op === 'Div' && y === 1))) return x;
  return null;
}

def(['Where'], (node, inputs) => {
  const [c, x, y] = [req(inputs, 0, node), req(inputs, 1, node), req(inputs, 2, node)];
  return [{ dtype: x.dtype, shape: broadcastOrThrow(node, [c.shape, x.shape, y.shape]) }];
});

function broadcastOrThrow(node: Node, shapes: Shape[]): Shape {
  try {
    return broadcastShapes(shapes);
  } catch (e) {
    if (e instanceof BroadcastError) {
      throw new FhecError(`${e.message} (input shapes ${shapes.map(fmt).join(', ')})`, { node: nodeLabel(node) });
    }
    throw e;
  }
}

def(['Cast'], (node, inputs) => {
  const x = req(inputs, 0, node);
  const to = dtypeFromOnnx(attrInt(node, 'to'));
  if (!to) throw new FhecError(`Cast to unsupported dtype code ${attrInt(node, 'to')}`, { node: nodeLabel(node) });
  const value = x.value && (to === 'int64' || to === 'int32') ? x.value : undefined;
  return [{ dtype: to, shape: x.shape && [...x.shape], value }];
});

def(['CastLike'], (node, inputs) => {
  const x = req(inputs, 0, node);
  return [{ dtype: req(inputs, 1, node).dtype, shape: x.shape && [...x.shape] }];
});

// ---- shape plumbing ----------------------------------------------------------------------------

def(['Shape'], (node, inputs, _opset) => {
  const x = req(inputs, 0, node);
  if (!x.shape) return [unknown('int64')];
  const r = x.shape.length;
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
  const start = clamp(hasAttr(node, 'start') ? attrInt(node, 'start') : 0);
  const end = clamp(hasAttr(node, 'end') ? attrInt(node, 'end') : r);
  const data = x.shape.slice(start, Math.max(start, end));
  return [{ dtype: 'int64', shape: [data.length], value: { dims: [data.length], data } }];
});

def(['Size'], (node, inputs) => {
  const x = req(inputs, 0, node);
  const n = x.shape?.reduce<Dim>((a, d) => dimMul(a, d), 1);
  return [{ dtype: 'int64', shape: [], value: n === undefined ? undefined : { dims: [], data: [n] } }];
});

def(['ConstantOfShape'], (node, inputs) => {
  const s = req(inputs, 0, node);
  const t = attrTensor(node, 'value');
  const dtype = t ? t.dtype : 'float32';
  if (s.value) return [{ dtype, shape: [...s.value.data] }];
  const len = s.shape?.[0];
  return [{ dtype, shape: typeof len === 'number' ? new Array<Dim>(len).fill(null) : undefined }];
});

def(['Range'], (node, inputs) => {
  const [st, li, de] = [0, 1, 2].map((i) => req(inputs, i, node));
  let len: Dim = null;
  if (isConcrete(st!.value) && isConcrete(li!.value) && isConcrete(de!.value)) {
    const [s, l, d] = [st!.value.data[0]!, li!.value.data[0]!, de!.value.data[0]!];
    len = Math.max(Math.ceil((l - s) / d), 0);
    if (len <= 64) {
      const data: number[] = [];
      for (let i = 0; i < len; i++) data.push(s + i * d);
      return [{ dtype: st!.dtype, shape: [len], value: { dims: [len], data } }];
    }
  } else if (st!.value?.data[0] === 0 && de!.value?.data[0] === 1 && li!.value) {
    len = li!.value.data[0]!;
  }
  return [{ dtype: st!.dtype, shape: [len] }];
});

def(['Reshape'], (node, inputs) => {
  const x = req(inputs, 0, node);
  const s = req(inputs, 1, node);
  const allowzero = hasAttr(node, 'allowzero') ? attrInt(node, 'allowzero') : 0;
  if (!s.value) {
    const len = s.shape?.[0];
    return [{ dtype: x.dtype, shape: typeof len === 'number' ? new Array<Dim>(len).fill(null) : undefined }];
  }
  const target = s.value.data.map((d, i) => (d === 0 && !allowzero ? (x.shape ? x.shape[i] ?? null : null) : d));
  const neg = target.findIndex((d) => d === -1);
  if (neg >= 0) {
    const total = x.shape?.reduce<Dim>((a, d) => dimMul(a, d), 1);
    const rest = target.filter((_, i) => i !== neg).reduce<Dim>((a, d) => dimMul(a, d), 1);
    target[neg] = typeof total === 'number' && typeof rest === 'number' ? total / rest : divSym(total ?? null, target, neg, x.shape);
  }
  if (x.shape && target.every((d) => typeof d === 'number') && x.shape.every((d) => typeof d === 'number')) {
    const a = (x.shape as number[]).reduce((p, d) => p * d, 1);
    const b = (target as number[]).reduce((p, d) => p * d, 1);
    if (a !== b || !Number.isInteger(target[neg] ?? 0)) {
      throw new FhecError(`cannot reshape ${fmt(x.shape)} (${a} elements) to [${s.value.data.join(', ')}]`, { node: nodeLabel(node) });
    }
  }
  const value = x.value ? { dims: target as number[], data: x.value.data } : undefined;
  return [{ dtype: x.dtype, shape: target, value: value && target.every((d) => typeof d === 'number') ? value : undefined }];
});

/** -1 in a reshape with symbolic dims: cancel equal symbols between input and the other target dims. */
function divSym(_total: Dim, target: Dim[], neg: number, inShape: Shape): Dim {
  if (!inShape) return null;
  const num = [...inShape];
  const den = target.filter((_, i) => i !== neg);
  let concreteNum = 1, concreteDen = 1;
  const syms: Dim[] = [];
  for (const d of num) {
    if (typeof d === 'number') concreteNum *= d;
    else syms.push(d);
  }
  for (const d of den) {
    if (typeof d === 'number') concreteDen *= d;
    else {
      const k = syms.indexOf(d);
      if (k < 0 || d === null) return null;
      syms.splice(k, 1);
    }
  }
  if (concreteNum % concreteDen !== 0) return null;
  const c = concreteNum / concreteDen;
  if (syms.length === 0) return c;
  if (syms.length === 1 && c === 1) return syms[0]!;
  return null;
}

def(['Flatten'], (node, inputs) => {
  const x = req(inputs, 0, node);
  if (!x.shape) return [unknown(x.dtype)];
  const axis = normAxisIncl(hasAttr(node, 'axis') ? attrInt(node, 'axis') : 1, x.shape.length);
  const prod = (ds: Dim[]) => ds.reduce<Dim>((a, d) => dimMul(a, d), 1);
  return [{ dtype: x.dtype, shape: [prod(x.shape.slice(0, axis)), prod(x.shape.slice(axis))] }];
});

function normAxisIncl(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

function axesFrom(node: Node, inputs: (InferInput | null)[], opset: number, sinceInput: number): number[] | undefined | null {
  if (opset >= sinceInput) {
    const a = inputs[1];
    if (!a) return undefined; // no axes given
    if (!isConcrete(a.value)) return null; // unknown
    return a.value.data;
  }
  return hasAttr(node, 'axes') ? attrInts(node, 'axes') : undefined;
}

def(['Unsqueeze'], (node, inputs, opset) => {
  const x = req(inputs, 0, node);
  const axes = axesFrom(node, inputs, opset, 13);
  if (!x.shape || !axes) return [unknown(x.dtype)];
  const rank = x.shape.length + axes.length;
  const norm = axes.map((a) => normAxis(a, rank, node)).sort((a, b) => a - b);
  const out: Dim[] = [];
  let k = 0;
  for (let i = 0; i < rank; i++) out.push(norm.includes(i) ? 1 : x.shape[k++]!);
  return [{ dtype: x.dtype, shape: out, value: x.value ? { dims: out as number[], data: x.value.data } : undefined }];
});

def(['Squeeze'], (node, inputs, opset) => {
  const x = req(inputs, 0, node);
  const axes = axesFrom(node, inputs, opset, 13);
  if (!x.shape || axes === null) return [unknown(x.dtype)];
  let out: Dim[];
  if (axes === undefined) {
    if (x.shape.some((d) => typeof d !== 'number')) return [unknown(x.dtype)];
    out = x.shape.filter((d) => d !== 1);
  } else {
    const norm = axes.map((a) => normAxis(a, x.shape!.length, node));
    out = x.shape.filter((_, i) => !norm.includes(i));
  }
  return [{ dtype: x.dtype, shape: out, value: x.value ? { dims: out as number[], data: x.value.data } : undefined }];
});

def(['Concat'], (node, inputs) => {
  const xs = inputs.filter((x): x is InferInput => x !== null);
  const dtype = xs[0]!.dtype;
  if (xs.some((x) => !x.shape)) return [unknown(dtype)];
  const rank = xs[0]!.shape!.length;
  const axis = normAxis(attrInt(node, 'axis'), rank, node);
  const out = [...xs[0]!.shape!];
  let sum: Dim = 0;
  for (const x of xs) {
    if (x.shape!.length !== rank) {
      throw new FhecError(`inputs have different ranks (${xs.map((y) => fmt(y.shape)).join(', ')})`, { node: nodeLabel(node) });
    }
    const d = x.shape![axis]!;
    sum = typeof sum === 'number' && typeof d === 'number' ? sum + d : sum === 0 ? d : d === 0 ? sum : null;
  }
  out[axis] = sum;
  let value: KnownValue | undefined;
  if (rank === 1 && xs.every((x) => x.value)) {
    const data = xs.flatMap((x) => x.value!.data);
    value = { dims: [data.length], data };
  }
  return [{ dtype, shape: out, value }];
});

def(['Gather'], (node, inputs) => {
  const x = req(inputs, 0, node);
  const idx = req(inputs, 1, node);
  if (!x.shape || !idx.shape) return [unknown(x.dtype)];
  const axis = normAxis(hasAttr(node, 'axis') ? attrInt(node, 'axis') : 0, x.shape.length, node);
  const out = [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)];
  let value: KnownValue | undefined;
  if (x.value && x.shape.length === 1 && isConcrete(idx.value)) {
    const n = x.value.data.length;
    const data = idx.value.data.map((i) => x.value!.data[i < 0 ? i + n : i] ?? null);
    value = { dims: idx.value.dims, data };
  }
  return [{ dtype: x.dtype, shape: out, value }];
});

def(['Slice'], (node, inputs, opset) => {
  const x = req(inputs, 0, node);
  if (!x.shape) return [unknown(x.dtype)];
  let starts: number[] | undefined, ends: number[] | undefined, axes: number[] | undefined, steps: number[] | undefined;
  if (opset >= 10) {
    const get = (i: number) => {
      const v = inputs[i];
      if (!v) return undefined;
      return isConcrete(v.value) ? v.value.data : null;
    };
    const s = get(1), e = get(2), a = get(3), st = get(4);
    if (s === null || e === null || a === null || st === null || !s || !e) return [{ dtype: x.dtype, shape: x.shape.map(() => null) }];
    [starts, ends, axes, steps] = [s, e, a, st];
  } else {
    starts = attrInts(node, 'starts');
    ends = attrInts(node, 'ends');
    axes = hasAttr(node, 'axes') ? attrInts(node, 'axes') : undefined;
  }
  const rank = x.shape.length;
  const ax = (axes ?? starts.map((_, i) => i)).map((a) => normAxis(a, rank, node));
  const out = [...x.shape];
  const ranges: [number, number, number][] = [];
  for (let k = 0; k < ax.length; k++) {
    const d = x.shape[ax[k]!]!;
    const step = steps?.[k] ?? 1;
    if (typeof d !== 'number') {
      // A full slice of a symbolic dim keeps it; anything else is unknown.
      out[ax[k]!] = starts[k] === 0 && step === 1 && ends[k]! >= 2 ** 31 - 1 ? d : null;
      continue;
    }
    const [b, e] = sliceBounds(starts[k]!, ends[k]!, step, d);
    const len = step > 0 ? Math.max(0, Math.ceil((e - b) / step)) : Math.max(0, Math.ceil((b - e) / -step));
    out[ax[k]!] = len;
    ranges.push([b, len, step]);
  }
  let value: KnownValue | undefined;
  if (rank === 1 && x.value && ranges.length === 1 && typeof out[0] === 'number') {
    const [b, len, step] = ranges[0]!;
    const data: Dim[] = [];
    for (let i = 0; i < len; i++) data.push(x.value.data[b + i * step]!);
    value = { dims: [len], data };
  }
  return [{ dtype: x.dtype, shape: out, value }];
});

export function sliceBounds(start: number, end: number, step: number, dim: number): [number, number] {
  let s = start < 0 ? start + dim : start;
  let e = end < 0 ? end + dim : end;
  if (step > 0) {
    s = Math.min(Math.max(s, 0), dim);
    e = Math.min(Math.max(e, 0), dim);
  } else {
    s = Math.min(Math.max(s, 0), dim - 1);
    e = Math.min(Math.max(e, -1), dim - 1);
  }
  return [s, e];
}

def(['Transpose'], (node, inputs) => {
  const x = req(inputs, 0, node);
  if (!x.shape) return [unknown(x.dtype)];
  const perm = hasAttr(node, 'perm') ? attrInts(node, 'perm') : x.shape.map((_, i) => x.shape!.length - 1 - i);
  if (perm.length !== x.shape.length) {
    throw new FhecError(`perm [${perm.join(', ')}] does not match input rank ${x.shape.length}`, { node: nodeLabel(node) });
  }
  return [{ dtype: x.dtype, shape: perm.map((p) => x.shape![p]!) }];
});

def(['Expand'], (node, inputs) => {
  const x = req(inputs, 0, node);
  const s = req(inputs, 1, node);
  if (!s.value) return [unknown(x.dtype)];
  return [{ dtype: x.dtype, shape: broadcastOrThrow(node, [x.shape, s.value.data]) }];
});

def(['Tile'], (node, inputs) => {
  const x = req(inputs, 0, node);
  const r = req(inputs, 1, node);
  if (!x.shape || !r.value) return [unknown(x.dtype)];
  return [{ dtype: x.dtype, shape: x.shape.map((d, i) => dimMul(d, r.value!.data[i] ?? null)) }];
});

def(['Trilu'], (node, inputs) => {
  const x = req(inputs, 0, node);
  return [{ dtype: x.dtype, shape: x.shape && [...x.shape] }];
});

def(['Split'], (node, inputs, opset) => {
  const x = req(inputs, 0, node);
  const n = node.outputs.length;
  if (!x.shape) return node.outputs.map(() => unknown(x.dtype));
  const axis = normAxis(hasAttr(node, 'axis') ? attrInt(node, 'axis') : 0, x.shape.length, node);
  const d = x.shape[axis]!;
  // Explicit sizes: the `split` input (opset >= 13; unknown until its value is) or attribute (before).
  let given: number[] | undefined;
  if (opset >= 13 && inputs[1]) {
    if (!isConcrete(inputs[1].value)) {
      return node.outputs.map(() => ({ dtype: x.dtype, shape: x.shape!.map((dim, i) => (i === axis ? null : dim)) }));
    }
    given = inputs[1].value.data;
  } else if (opset < 13 && hasAttr(node, 'split')) given = attrInts(node, 'split');
  const parts = opset >= 18 && hasAttr(node, 'num_outputs') ? attrInt(node, 'num_outputs') : n;
  let sizes: number[] | undefined;
  if (typeof d === 'number' || given) {
    const cut = splitSizes(typeof d === 'number' ? d : given!.reduce((a, b) => a + b, 0), n, given, parts, opset);
    if (typeof cut === 'string') throw new FhecError(cut, { node: nodeLabel(node) });
    sizes = cut;
  }
  return node.outputs.map((_, i) => {
    const out = [...x.shape!];
    out[axis] = sizes ? sizes[i]! : null;
    return { dtype: x.dtype, shape: out };
  });
});

// ---- reductions, matmul --------------------------------------------------------------------------

def(['ReduceMean', 'ReduceSum', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceSumSquare', 'ReduceL2', 'ReduceL1', 'ReduceLogSumExp'], (node, inputs, opset) => {
  const x = req(inputs, 0, node);
  const axesAsInput = node.op === 'ReduceSum' ? opset >= 13 : opset >= 18;
  const axes = axesFrom(node, inputs, opset, axesAsInput ? 0 : Infinity);
  if (!x.shape || axes === null) return [unknown(x.dtype)];
  const keep = hasAttr(node, 'keepdims') ? attrInt(node, 'keepdims') : 1;
  const noop = hasAttr(node, 'noop_with_empty_axes') ? attrInt(node, 'noop_with_empty_axes') : 0;
  if ((!axes || axes.length === 0) && noop) return [{ dtype: x.dtype, shape: [...x.shape] }];
  const all = !axes || axes.length === 0;
  const norm = all ? x.shape.map((_, i) => i) : axes.map((a) => normAxis(a, x.shape!.length, node));
  const out: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (norm.includes(i)) {
      if (keep) out.push(1);
    } else out.push(d);
  });
  return [{ dtype: x.dtype, shape: out }];
});

def(['ArgMax', 'ArgMin'], (node, inputs) => {
  const x = req(inputs, 0, node);
  if (!x.shape) return [unknown('int64')];
  const axis = normAxis(hasAttr(node, 'axis') ? attrInt(node, 'axis') : 0, x.shape.length, node);
  const keep = hasAttr(node, 'keepdims') ? attrInt(node, 'keepdims') : 1;
  const out = x.shape.flatMap((d, i) => (i === axis ? (keep ? [1] : []) : [d]));
  return [{ dtype: 'int64', shape: out }];
});

def(['MatMul'], (node, inputs) => {
  const a = req(inputs, 0, node);
  const b = req(inputs, 1, node);
  if (!a.shape || !b.shape) return [unknown(a.dtype)];
  return [{ dtype: a.dtype, shape: matmulShape(node, a.shape, b.shape) }];
});

function matmulShape(node: Node, a: Dim[], b: Dim[]): Dim[] {
  const A = a.length === 1 ? [1, a[0]!] : a;
  const B = b.length === 1 ? [b[0]!, 1] : b;
  const ka = A[A.length - 1]!, kb = B[B.length - 2]!;
  if (typeof ka === 'number' && typeof kb === 'number' && ka !== kb) {
    throw new FhecError(`inner dimensions differ: ${fmt(a)} x ${fmt(b)}`, { node: nodeLabel(node) });
  }
  const batch = broadcastOrThrow(node, [A.slice(0, -2), B.slice(0, -2)])!;
  const out = [...batch, A[A.length - 2]!, B[B.length - 1]!];
  if (a.length === 1) out.splice(out.length - 2, 1);
  if (b.length === 1) out.splice(out.length - 1, 1);
  return out;
}

def(['Gemm'], (node, inputs) => {
  const a = req(inputs, 0, node);
  const b = req(inputs, 1, node);
  if (!a.shape || !b.shape) return [unknown(a.dtype)];
  const ta = hasAttr(node, 'transA') ? attrInt(node, 'transA') : 0;
  const tb = hasAttr(node, 'transB') ? attrInt(node, 'transB') : 0;
  return [{ dtype: a.dtype, shape: [ta ? a.shape[1]! : a.shape[0]!, tb ? b.shape[0]! : b.shape[1]!] }];
});

// ---- normalization, rotary, attention (ONNX 23 and com.microsoft) ---------------------------------

def(['LayerNormalization', 'RMSNormalization', 'SimplifiedLayerNormalization'], (node, inputs) => {
  const x = req(inputs, 0, node);
  const axis = hasAttr(node, 'axis') ? attrInt(node, 'axis') : -1;
  const statShape = x.shape?.map((d, i) => (i >= normAxisIncl(axis, x.shape!.length) ? 1 : d));
  return node.outputs.map((_, i) => (i === 0 ? { dtype: x.dtype, shape: x.shape && [...x.shape] } : { dtype: 'float32' as DType, shape: statShape }));
});
def(['SimplifiedLayerNormalization', 'LayerNormalization'], rules.get('::SimplifiedLayerNormalization')!, 'com.microsoft');

def(['SkipSimplifiedLayerNormalization', 'SkipLayerNormalization'], (node, inputs) => {
  const x = req(inputs, 0, node);
  const stat = x.shape?.map((d, i) => (i === x.shape!.length - 1 ? 1 : d));
  return node.outputs.map((_, i) =>
    i === 0 || i === 3 ? { dtype: x.dtype, shape: x.shape && [...x.shape] } : { dtype: 'float32' as DType, shape: stat },
  );
}, 'com.microsoft');

def(['RotaryEmbedding'], (node, inputs) => {
  const x = req(inputs, 0, node);
  return [{ dtype: x.dtype, shape: x.shape && [...x.shape] }];
});
def(['RotaryEmbedding'], rules.get('::RotaryEmbedding')!, 'com.microsoft');

def(['Attention'], (node, inputs) => {
  const q = req(inputs, 0, node);
  const k = req(inputs, 1, node);
  const v = req(inputs, 2, node);
  const past = inputs[4];
  const is3d = q.shape?.length === 3;
  const qHeads = hasAttr(node, 'q_num_heads') ? attrInt(node, 'q_num_heads') : undefined;
  const kvHeads = hasAttr(node, 'kv_num_heads') ? attrInt(node, 'kv_num_heads') : undefined;
  let y: Shape;
  let kvHeadsDim: Dim = null, kvSeq: Dim = null, kHead: Dim = null, vHead: Dim = null;
  if (q.shape && k.shape && v.shape) {
    if (is3d) {
      const vHidden = v.shape[2]!;
      vHead = typeof vHidden === 'number' && kvHeads ? vHidden / kvHeads : null;
      y = [q.shape[0]!, q.shape[1]!, typeof vHead === 'number' && qHeads ? vHead * qHeads : null];
      kvHeadsDim = kvHeads ?? null;
      kvSeq = k.shape[1]!;
      const kHidden = k.shape[2]!;
      kHead = typeof kHidden === 'number' && kvHeads ? kHidden / kvHeads : null;
    } else {
      y = [q.shape[0]!, q.shape[1]!, q.shape[2]!, v.shape[3]!];
      kvHeadsDim = k.shape[1]!;
      kvSeq = k.shape[2]!;
      kHead = k.shape[3]!;
      vHead = v.shape[3]!;
    }
  }
  const pastSeq = past?.shape?.[2] ?? 0;
  const total: Dim = typeof pastSeq === 'number' && typeof kvSeq === 'number' ? pastSeq + kvSeq : pastSeq === 0 ? kvSeq : null;
  const batch = q.shape?.[0] ?? null;
  const res: InferResult[] = [{ dtype: q.dtype, shape: y }];
  if (node.outputs.length > 1) res.push({ dtype: q.dtype, shape: [batch, kvHeadsDim, total, kHead] });
  if (node.outputs.length > 2) res.push({ dtype: q.dtype, shape: [batch, kvHeadsDim, total, vHead] });
  if (node.outputs.length > 3) res.push({ dtype: q.dtype, shape: [batch, qHeads ?? q.shape?.[1] ?? null, q.shape?.[is3d ? 1 : 2] ?? null, total] });
  return res;
});

def(['MultiHeadAttention', 'GroupQueryAttention'], (node, inputs) => {
  const q = req(inputs, 0, node);
  const k = inputs[1];
  const past = inputs[node.op === 'MultiHeadAttention' ? 6 : 3];
  const numHeads = attrInt(node, 'num_heads');
  const kvHeads = node.op === 'GroupQueryAttention' ? attrInt(node, 'kv_num_heads') : numHeads;
  const hidden = q.shape?.[2];
  const head = typeof hidden === 'number' ? (node.op === 'GroupQueryAttention' && !k ? hidden / (numHeads + 2 * kvHeads) : hidden / numHeads) : null;
  const outHidden = typeof head === 'number' ? head * numHeads : null;
  const seq = q.shape?.[1] ?? null;
  const pastSeq = past?.shape?.[2] ?? 0;
  const total: Dim = node.op === 'GroupQueryAttention' ? past?.shape?.[2] ?? null
    : typeof pastSeq === 'number' && typeof seq === 'number' ? pastSeq + (k?.shape?.[1] as number ?? seq) : null;
  const batch = q.shape?.[0] ?? null;
  return node.outputs.map((_, i) =>
    i === 0 ? { dtype: q.dtype, shape: [batch, seq, outHidden] } : { dtype: q.dtype, shape: [batch, kvHeads, total, head] },
  );
}, 'com.microsoft');

def(['SwiGLU'], (node, inputs) => {
  const a = req(inputs, 0, node);
  return [{ dtype: a.dtype, shape: broadcastOrThrow(node, [a.shape, req(inputs, 1, node).shape]) }];
});

def(['Pad'], (node, inputs) => {
  const x = req(inputs, 0, node);
  const p = inputs[1];
  const pads = p?.value;
  if (!x.shape || !isConcrete(pads) || inputs[3]) return [unknown(x.dtype)];
  const r = x.shape.length;
  return [{ dtype: x.dtype, shape: x.shape.map((d, i) => (typeof d === 'number' ? d + pads.data[i]! + pads.data[i + r]! : null)) }];
});

def(['CumSum', 'ScatterND'], (node, inputs) => {
  const x = req(inputs, 0, node);
  return [{ dtype: x.dtype, shape: x.shape && [...x.shape] }];
});

def(['Dropout'], (node, inputs) => {
  const x = req(inputs, 0, node);
  return node.outputs.map((_, i) => ({ dtype: i === 0 ? x.dtype : 'bool', shape: x.shape && [...x.shape] }));
});

def(['GatherElements'], (node, inputs) => {
  const x = req(inputs, 0, node);
  const idx = req(inputs, 1, node);
  return [{ dtype: x.dtype, shape: idx.shape && [...idx.shape] }];
});

// ---- entry points -----------------------------------------------------------------------------------

/** Lets other op sets (e.g. the canonical `fhec` domain) add their rules. */
export function registerInferenceRule(domain: string, op: string, rule: Rule): void {
  rules.set(`${domain}::${op}`, rule);
}

export type InferenceRule = Rule;

export function hasInferenceRule(domain: string, op: string): boolean {
  return rules.has(`${domain === 'ai.onnx' ? '' : domain}::${op}`);
}

/**
 * Infer output dtypes, shapes and known values of one node. Unknown ops give their outputs'
 * current dtype and an unknown shape (the caller keeps what the importer recorded).
 */
export function inferNode(node: Node, inputs: (InferInput | null)[], opset: number): InferResult[] | undefined {
  const rule = rules.get(`${node.domain === 'ai.onnx' ? '' : node.domain}::${node.op}`);
  if (!rule) return undefined;
  return rule(node, inputs, opset);
}

export function fmt(shape: Shape | readonly Dim[]): string {
  if (!shape) return '[?]';
  return `[${shape.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;
}
