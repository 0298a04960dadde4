// Data movement: Transpose, Concat, Split, Slice, Gather, Expand, Tile, Pad, Trilu.
// Transpose and Slice are strided views materialized by one copy; nothing allocates per element.

import { attrFloat, attrInt, attrInts, attrString, hasAttr } from '../../../ir/graph/attrs.js';
import { splitSizes } from '../../../ir/ops/split-sizes.js';
import { stridesOf, type Tensor } from '../../../ir/tensor.js';
import { fail, input, normAxis, product, result, shapeStr, type Kernel } from '../kernel.js';
import { broadcastShapes, broadcastTo, gatherStrided } from '../strided.js';

const transposeKernel: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'data');
  const r = x.dims.length;
  const perm = attrInts(ctx.node, 'perm', Array.from({ length: r }, (_, i) => r - 1 - i));
  if (perm.length !== r || new Set(perm.map((p) => normAxis(ctx, p, r, 'perm entry'))).size !== r) {
    fail(ctx, `perm ${shapeStr(perm)} is not a permutation of rank ${r}`, 'perm');
  }
  const p = perm.map((a) => (a < 0 ? a + r : a));
  const s = stridesOf(x.dims);
  const dims = p.map((a) => x.dims[a]!);
  return [result(x.dtype, dims, gatherStrided(x.data, 0, p.map((a) => s[a]!), dims))];
};

const concatKernel: Kernel = (ctx, ins) => {
  const ts = ins.filter((t): t is Tensor => t !== null);
  if (ts.length === 0) fail(ctx, 'Concat needs at least one input');
  const r = ts[0]!.dims.length;
  const axis = normAxis(ctx, attrInt(ctx.node, 'axis'), r);
  for (const t of ts) {
    if (t.dims.length !== r || t.dims.some((d, i) => i !== axis && d !== ts[0]!.dims[i])) {
      fail(ctx, `Concat inputs ${ts.map((u) => shapeStr(u.dims)).join(', ')} differ outside axis ${axis}`);
    }
  }
  const dims = [...ts[0]!.dims];
  dims[axis] = ts.reduce((s, t) => s + t.dims[axis]!, 0);
  const outer = product(dims, 0, axis);
  const inner = product(dims, axis + 1);
  const out = new Float64Array(product(dims));
  const rowOut = dims[axis]! * inner;
  let off = 0;
  for (const t of ts) {
    const block = t.dims[axis]! * inner;
    for (let o = 0; o < outer; o++) out.set(t.data.subarray(o * block, (o + 1) * block), o * rowOut + off);
    off += block;
  }
  return [result(ts[0]!.dtype, dims, out)];
};

/** Copies the slab [start, start+len) along axis. */
function takeRange(x: Tensor, axis: number, start: number, len: number): Float64Array {
  const outer = product(x.dims, 0, axis);
  const inner = product(x.dims, axis + 1);
  const n = x.dims[axis]!;
  const out = new Float64Array(outer * len * inner);
  for (let o = 0; o < outer; o++) {
    const from = (o * n + start) * inner;
    out.set(x.data.subarray(from, from + len * inner), o * len * inner);
  }
  return out;
}

const splitKernel: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'input');
  const axis = normAxis(ctx, attrInt(ctx.node, 'axis', 0), x.dims.length);
  const given = ctx.opset >= 13 ? (ins[1] ? Array.from(ins[1].data) : undefined) : hasAttr(ctx.node, 'split') ? attrInts(ctx.node, 'split') : undefined;
  const outputs = ctx.node.outputs.length;
  const parts = ctx.opset >= 18 && hasAttr(ctx.node, 'num_outputs') ? attrInt(ctx.node, 'num_outputs') : outputs;
  const sizes = splitSizes(x.dims[axis]!, outputs, given, parts, ctx.opset);
  if (typeof sizes === 'string') fail(ctx, `${sizes} (input ${shapeStr(x.dims)}, axis ${axis})`);
  let start = 0;
  return sizes.map((len) => {
    const dims = x.dims.map((d, i) => (i === axis ? len : d));
    const t = result(x.dtype, dims, takeRange(x, axis, start, len));
    start += len;
    return t;
  });
};

const sliceKernel: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'data');
  const r = x.dims.length;
  let starts: number[];
  let ends: number[];
  let axes: number[] | undefined;
  let steps: number[] | undefined;
  if (ctx.opset < 10) {
    starts = attrInts(ctx.node, 'starts');
    ends = attrInts(ctx.node, 'ends');
    axes = hasAttr(ctx.node, 'axes') ? attrInts(ctx.node, 'axes') : undefined;
  } else {
    starts = Array.from(input(ctx, ins, 1, 'starts').data);
    ends = Array.from(input(ctx, ins, 2, 'ends').data);
    axes = ins[3] ? Array.from(ins[3].data) : undefined;
    steps = ins[4] ? Array.from(ins[4].data) : undefined;
  }
  axes ??= starts.map((_, i) => i);
  if (ends.length !== starts.length || axes.length !== starts.length || (steps && steps.length !== starts.length)) {
    fail(ctx, 'Slice starts, ends, axes and steps must have the same length');
  }
  const st = new Array<number>(r).fill(0);
  const step = new Array<number>(r).fill(1);
  const dims = [...x.dims];
  const seen = new Set<number>();
  axes.forEach((a0, i) => {
    const a = normAxis(ctx, a0, r);
    if (seen.has(a)) fail(ctx, `axis ${a} is sliced twice`);
    seen.add(a);
    const d = x.dims[a]!;
    const k = steps ? steps[i]! : 1;
    if (k === 0) fail(ctx, 'Slice step must not be 0');
    let s = starts[i]!;
    let e = ends[i]!;
    if (s < 0) s += d;
    if (e < 0) e += d;
    if (k > 0) {
      s = Math.min(Math.max(s, 0), d);
      e = Math.min(Math.max(e, 0), d);
      dims[a] = Math.max(0, Math.ceil((e - s) / k));
    } else {
      s = Math.min(Math.max(s, 0), d - 1);
      e = Math.min(Math.max(e, -1), d - 1);
      dims[a] = Math.max(0, Math.ceil((s - e) / -k));
    }
    st[a] = s;
    step[a] = k;
  });
  const s = stridesOf(x.dims);
  let offset = 0;
  for (let i = 0; i < r; i++) if (dims[i]! > 0) offset += st[i]! * s[i]!;
  return [result(x.dtype, dims, gatherStrided(x.data, offset, s.map((v, i) => v * step[i]!), dims))];
};

const gatherKernel: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'data');
  const ind = input(ctx, ins, 1, 'indices');
  const axis = normAxis(ctx, attrInt(ctx.node, 'axis', 0), x.dims.length);
  const n = x.dims[axis]!;
  const outer = product(x.dims, 0, axis);
  const inner = product(x.dims, axis + 1);
  const m = ind.size;
  const out = new Float64Array(outer * m * inner);
  for (let j = 0; j < m; j++) {
    let k = ind.data[j]!;
    if (k < 0) k += n;
    if (!(k >= 0 && k < n)) fail(ctx, `index ${ind.data[j]} is out of range for axis ${axis} of size ${n}`);
  }
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < m; j++) {
      let k = ind.data[j]!;
      if (k < 0) k += n;
      const from = (o * n + k) * inner;
      out.set(x.data.subarray(from, from + inner), (o * m + j) * inner);
    }
  }
  const dims = [...x.dims.slice(0, axis), ...ind.dims, ...x.dims.slice(axis + 1)];
  return [result(x.dtype, dims, out)];
};

const expandKernel: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'input');
  const shape = Array.from(input(ctx, ins, 1, 'shape').data);
  const dims = broadcastShapes(ctx, [x.dims, shape]);
  const data = broadcastTo(x.data, x.dims, dims);
  return [result(x.dtype, dims, data === x.data ? Float64Array.from(data) : data)];
};

/** Output built from per-axis index maps (source index, or -1 for the pad value). */
function gatherByAxisMaps(x: Tensor, maps: Int32Array[], fill: number): { dims: number[]; data: Float64Array } {
  const dims = maps.map((m) => m.length);
  const n = product(dims);
  const out = new Float64Array(n);
  const r = dims.length;
  if (n === 0) return { dims, data: out };
  if (r === 0) {
    out[0] = x.data[0]!;
    return { dims, data: out };
  }
  const s = stridesOf(x.dims);
  const idx = new Array<number>(r).fill(0);
  for (let o = 0; o < n; o++) {
    let src = 0;
    let pad = false;
    for (let k = 0; k < r; k++) {
      const v = maps[k]![idx[k]!]!;
      if (v < 0) {
        pad = true;
        break;
      }
      src += v * s[k]!;
    }
    out[o] = pad ? fill : x.data[src]!;
    for (let k = r - 1; k >= 0; k--) {
      if (++idx[k]! < dims[k]!) break;
      idx[k] = 0;
    }
  }
  return { dims, data: out };
}

const tileKernel: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'input');
  const reps = Array.from(input(ctx, ins, 1, 'repeats').data);
  if (reps.length !== x.dims.length || reps.some((v) => v < 0)) fail(ctx, `repeats ${shapeStr(reps)} do not fit ${shapeStr(x.dims)}`);
  const maps = x.dims.map((d, a) => Int32Array.from({ length: d * reps[a]! }, (_, i) => i % d));
  const { dims, data } = gatherByAxisMaps(x, maps, 0);
  return [result(x.dtype, dims, data)];
};

const padKernel: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'data');
  const r = x.dims.length;
  const mode = attrString(ctx.node, 'mode', 'constant');
  let pads: number[];
  let value: number;
  let axes: number[];
  if (ctx.opset < 11) {
    pads = attrInts(ctx.node, 'pads');
    value = attrFloat(ctx.node, 'value', 0);
    axes = Array.from({ length: r }, (_, i) => i);
  } else {
    pads = Array.from(input(ctx, ins, 1, 'pads').data);
    value = ins[2] && ins[2].size > 0 ? ins[2].data[0]! : 0;
    axes = ins[3] ? Array.from(ins[3].data).map((a) => normAxis(ctx, a, r)) : Array.from({ length: r }, (_, i) => i);
  }
  if (pads.length !== 2 * axes.length) fail(ctx, `pads ${shapeStr(pads)} need ${2 * axes.length} entries`);
  const before = new Array<number>(r).fill(0);
  const after = new Array<number>(r).fill(0);
  axes.forEach((a, i) => {
    before[a] = pads[i]!;
    after[a] = pads[i + axes.length]!;
  });
  const maps = x.dims.map((d, a) => {
    const len = d + before[a]! + after[a]!;
    if (len < 0) fail(ctx, `pads ${shapeStr(pads)} remove more than axis ${a} holds`);
    return Int32Array.from({ length: len }, (_, o) => {
      const i = o - before[a]!;
      if (i >= 0 && i < d) return i;
      if (mode === 'constant' || d === 0) return -1;
      if (mode === 'edge') return Math.min(Math.max(i, 0), d - 1);
      if (mode === 'wrap') return ((i % d) + d) % d;
      if (mode === 'reflect') {
        if (d === 1) return 0;
        const p = 2 * (d - 1);
        const m = ((i % p) + p) % p;
        return m < d ? m : p - m;
      }
      return fail(ctx, `unknown pad mode '${mode}'`, 'mode');
    });
  });
  const { dims, data } = gatherByAxisMaps(x, maps, value);
  return [result(x.dtype, dims, data)];
};

const triluKernel: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'input');
  const r = x.dims.length;
  if (r < 2) fail(ctx, `Trilu needs rank >= 2, got ${shapeStr(x.dims)}`);
  const k = ins[1] ? ins[1].data[0]! : 0;
  const upper = attrInt(ctx.node, 'upper', 1) === 1;
  const R = x.dims[r - 2]!;
  const C = x.dims[r - 1]!;
  const out = Float64Array.from(x.data);
  for (let b = 0; b < out.length; b += R * C) {
    for (let i = 0; i < R; i++) {
      for (let j = 0; j < C; j++) {
        const keep = upper ? j - i >= k : j - i <= k;
        if (!keep) out[b + i * C + j] = 0;
      }
    }
  }
  return [result(x.dtype, x.dims, out)];
};

const gatherElementsKernel: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'data');
  const ind = input(ctx, ins, 1, 'indices');
  const r = x.dims.length;
  const axis = normAxis(ctx, attrInt(ctx.node, 'axis', 0), r);
  if (ind.dims.length !== r) fail(ctx, `indices ${shapeStr(ind.dims)} must have the rank of data ${shapeStr(x.dims)}`);
  const xs = stridesOf(x.dims);
  const is = stridesOf(ind.dims);
  const n = x.dims[axis]!;
  const out = new Float64Array(ind.size);
  for (let o = 0; o < ind.size; o++) {
    let k = ind.data[o]!;
    if (k < 0) k += n;
    if (!(k >= 0 && k < n)) fail(ctx, `index ${ind.data[o]} is out of range for axis ${axis} of size ${n}`);
    let src = 0;
    for (let a = 0; a < r; a++) src += (a === axis ? k : Math.floor(o / is[a]!) % ind.dims[a]!) * xs[a]!;
    out[o] = x.data[src]!;
  }
  return [result(x.dtype, ind.dims, out)];
};

const scatterNDKernel: Kernel = (ctx, ins) => {
  const x = input(ctx, ins, 0, 'data');
  const ind = input(ctx, ins, 1, 'indices');
  const upd = input(ctx, ins, 2, 'updates');
  const reduction = attrString(ctx.node, 'reduction', 'none');
  const q = ind.dims.length;
  const k = ind.dims[q - 1]!;
  if (q < 1 || k > x.dims.length) fail(ctx, `indices ${shapeStr(ind.dims)} do not index data ${shapeStr(x.dims)}`);
  const xs = stridesOf(x.dims);
  const slice = product(x.dims, k);
  const count = product(ind.dims, 0, q - 1);
  if (upd.size !== count * slice) fail(ctx, `updates ${shapeStr(upd.dims)} do not match indices ${shapeStr(ind.dims)} and data ${shapeStr(x.dims)}`);
  const out = Float64Array.from(x.data);
  for (let c = 0; c < count; c++) {
    let base = 0;
    for (let a = 0; a < k; a++) {
      let v = ind.data[c * k + a]!;
      if (v < 0) v += x.dims[a]!;
      if (!(v >= 0 && v < x.dims[a]!)) fail(ctx, `index ${ind.data[c * k + a]} is out of range for axis ${a}`);
      base += v * xs[a]!;
    }
    for (let j = 0; j < slice; j++) {
      const u = upd.data[c * slice + j]!;
      const o = out[base + j]!;
      out[base + j] =
        reduction === 'add' ? o + u : reduction === 'mul' ? o * u : reduction === 'max' ? Math.max(o, u) : reduction === 'min' ? Math.min(o, u) : u;
    }
  }
  return [result(x.dtype, x.dims, out)];
};

export const movementKernels: Record<string, Kernel> = {
  Transpose: transposeKernel,
  Concat: concatKernel,
  Split: splitKernel,
  Slice: sliceKernel,
  Gather: gatherKernel,
  Expand: expandKernel,
  Tile: tileKernel,
  Pad: padKernel,
  Trilu: triluKernel,
  GatherElements: gatherElementsKernel,
  ScatterND: scatterNDKernel,
};

