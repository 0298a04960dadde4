// Shape plumbing: Reshape, Flatten, Squeeze, Unsqueeze, Shape, Size, ConstantOfShape, Range, Constant.
// These never touch values, only dims (Reshape/Squeeze/Unsqueeze/Flatten share the input's data).

import { attrFloat, attrFloats, attrInt, attrInts, attrTensor, hasAttr } from '../../../ir/graph/attrs.js';
import { Tensor } from '../../../ir/tensor.js';
import { fail, input, normAxis, product, result, shapeStr, type Kernel, type KernelContext } from '../kernel.js';

function ints(t: Tensor): number[] {
  return Array.from(t.data);
}

const reshapeKernel: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'data');
  const spec = ins[1] ? ints(ins[1]) : attrInts(ctx.node, 'shape');
  const allowzero = attrInt(ctx.node, 'allowzero', 0) === 1;
  const dims = spec.map((d, i) => (d === 0 && !allowzero ? (x.dims[i] ?? fail(ctx, `shape ${shapeStr(spec)} copies dim ${i}, which ${shapeStr(x.dims)} lacks`)) : d));
  const infer = dims.indexOf(-1);
  if (infer !== dims.lastIndexOf(-1)) fail(ctx, `shape ${shapeStr(spec)} has more than one -1`);
  if (infer >= 0) {
    const known = dims.reduce((p, d, i) => (i === infer ? p : p * d), 1);
    if (known === 0 || x.size % known !== 0) fail(ctx, `cannot reshape ${shapeStr(x.dims)} to ${shapeStr(spec)}`);
    dims[infer] = x.size / known;
  }
  if (dims.some((d) => d < 0 || !Number.isInteger(d)) || product(dims) !== x.size) {
    fail(ctx, `cannot reshape ${shapeStr(x.dims)} (${x.size} elements) to ${shapeStr(spec)}`);
  }
  return [x.reshape(dims)];
};

const flattenKernel: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'input');
  const r = x.dims.length;
  let axis = attrInt(ctx.node, 'axis', 1);
  if (axis < 0) axis += r;
  if (axis < 0 || axis > r) fail(ctx, `axis ${attrInt(ctx.node, 'axis', 1)} is out of range for rank ${r}`);
  return [x.reshape([product(x.dims, 0, axis), product(x.dims, axis)])];
};

function axesOf(ctx: KernelContext, ins: readonly (Tensor | null)[]): number[] | undefined {
  if (ctx.opset >= 13) return ins[1] ? ints(ins[1]) : undefined;
  return hasAttr(ctx.node, 'axes') ? attrInts(ctx.node, 'axes') : undefined;
}

const squeezeKernel: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'data');
  const axes = axesOf(ctx, ins);
  const r = x.dims.length;
  const drop = new Set(axes ? axes.map((a) => normAxis(ctx, a, r)) : x.dims.flatMap((d, i) => (d === 1 ? [i] : [])));
  for (const a of drop) if (x.dims[a] !== 1) fail(ctx, `cannot squeeze axis ${a} of size ${x.dims[a]} in ${shapeStr(x.dims)}`);
  return [x.reshape(x.dims.filter((_, i) => !drop.has(i)))];
};

const unsqueezeKernel: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'data');
  const axes = axesOf(ctx, ins);
  if (!axes) fail(ctx, 'Unsqueeze needs axes');
  const r = x.dims.length + axes.length;
  const put = new Set(axes.map((a) => normAxis(ctx, a, r)));
  if (put.size !== axes.length) fail(ctx, `axes ${shapeStr(axes)} repeat an axis`);
  const dims: number[] = [];
  let k = 0;
  for (let i = 0; i < r; i++) dims.push(put.has(i) ? 1 : x.dims[k++]!);
  return [x.reshape(dims)];
};

const shapeKernel: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'data');
  const r = x.dims.length;
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
  const start = clamp(attrInt(ctx.node, 'start', 0));
  const end = hasAttr(ctx.node, 'end') ? clamp(attrInt(ctx.node, 'end')) : r;
  const dims = x.dims.slice(start, Math.max(start, end));
  return [Tensor.from('int64', [dims.length], dims)];
};

const sizeKernel: Kernel = (ctx, ins) => [Tensor.scalar('int64', input(ctx, ins, 0, 'data').size)];

const constantOfShapeKernel: Kernel = (ctx, ins) => {
  const shape = ints(input(ctx, ins, 0, 'input'));
  if (shape.some((d) => d < 0 || !Number.isInteger(d))) fail(ctx, `invalid shape ${shapeStr(shape)}`);
  const v = attrTensor(ctx.node, 'value')?.load();
  const dtype = v?.dtype ?? 'float32';
  const out = new Float64Array(product(shape)).fill(v ? v.data[0]! : 0);
  return [result(dtype, shape, out)];
};

const rangeKernel: Kernel = (ctx, ins) => {
  const start = input(ctx, ins, 0, 'start');
  const limit = input(ctx, ins, 1, 'limit').data[0]!;
  const delta = input(ctx, ins, 2, 'delta').data[0]!;
  const s = start.data[0]!;
  if (delta === 0) fail(ctx, 'Range delta must not be 0');
  const n = Math.max(Math.ceil((limit - s) / delta), 0);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = s + i * delta;
  return [result(start.dtype, [n], out)];
};

const constantKernel: Kernel = (ctx) => {
  const node = ctx.node;
  const t = attrTensor(node, 'value');
  if (t) return [t.load()];
  if (hasAttr(node, 'value_float')) return [Tensor.scalar('float32', attrFloat(node, 'value_float'))];
  if (hasAttr(node, 'value_floats')) {
    const v = attrFloats(node, 'value_floats');
    return [Tensor.from('float32', [v.length], v)];
  }
  if (hasAttr(node, 'value_int')) return [Tensor.scalar('int64', attrInt(node, 'value_int'))];
  if (hasAttr(node, 'value_ints')) {
    const v = attrInts(node, 'value_ints');
    return [Tensor.from('int64', [v.length], v)];
  }
  return fail(ctx, `Constant has no supported value attribute (${Object.keys(node.attrs).join(', ') || 'none'})`);
};

export const shapeKernels: Record<string, Kernel> = {
  Reshape: reshapeKernel,
  Flatten: flattenKernel,
  Squeeze: squeezeKernel,
  Unsqueeze: unsqueezeKernel,
  Shape: shapeKernel,
  Size: sizeKernel,
  ConstantOfShape: constantOfShapeKernel,
  Range: rangeKernel,
  Constant: constantKernel,
};
