// Prints a graph in the textual IR (grammar in ir/text/grammar.ts). The output is deterministic and
// exact: parseGraph reads it back to an identical graph, weights aside (large tensors are referenced
// by location, small ones inlined). Example:
//
//   graph @main opsets("" = 14, "com.microsoft" = 1) {
//     input %input_ids : i64[1, "sequence_length"]
//
//     const %"model.embed_tokens.weight" : f32[256, 64] = weight<"external:model.onnx.data@0+65536">
//     const %c0 : i64[1] = dense<[0]>
//
//     %x : f32[1, "sequence_length", 64] = Gather(%"model.embed_tokens.weight", %input_ids) {axis = 0} name "/Gather"
//     %y : f32[*] = com.microsoft::SkipSimplifiedLayerNormalization(%x, _, %w) {epsilon = 1e-5 : f32} name "n"
//
//     output %y
//
//     meta producer = "pytorch"
//   }

import { DTYPE_SHORT, isFloat } from '../dtype.js';
import type { DType } from '../dtype.js';
import { FhecError, nodeLabel } from '../errors.js';
import { numel } from '../tensor.js';
import type { AttrValue, Graph, LazyTensor, Node, Shape, Value } from '../graph/types.js';
import { formatFloat, formatIdent, formatInt, formatName, isRepresentable, quote } from './literals.js';
import { formatRange } from './range.js';
import { UnavailableTensor } from './weights.js';

export interface PrintOptions {
  /** Tensors with at most this many elements are printed inline as `dense<[...]>` (default 16). */
  inlineLimit?: number;
  /** Print calibrated ranges (`range<...>` after a value's type) where values have one (default true). */
  ranges?: boolean;
}

export const DEFAULT_INLINE_LIMIT = 16;

export function printGraph(graph: Graph, opts: PrintOptions = {}): string {
  const limit = opts.inlineLimit ?? DEFAULT_INLINE_LIMIT;
  const showRanges = opts.ranges ?? true;
  const typed = (v: Value) => `${formatName('%', v.name)} : ${formatType(v.dtype, v.shape)}${showRanges && v.range ? ` ${formatRange(v.range)}` : ''}`;
  const sections: string[][] = [];
  const opsets = Object.entries(graph.opsets)
    .map(([d, v]) => `${quote(d)} = ${formatInt(v, `opset version of ${quote(d)}`)}`)
    .join(', ');
  const header = `graph ${formatName('@', graph.name)} opsets(${opsets}) {`;

  sections.push(graph.inputs.map((v) => `input ${typed(v)}`));
  sections.push(graph.constants.map((v) => printConstant(v, limit, typed)));
  sections.push(graph.nodes.map((n) => printNode(n, limit, typed)));
  sections.push(graph.outputs.map((v) => `output ${formatName('%', v.name)}`));
  sections.push(Object.entries(graph.metadata).map(([k, v]) => `meta ${formatIdent(k)} = ${quote(v)}`));

  const body = sections
    .filter((s) => s.length > 0)
    .map((s) => s.map((line) => `  ${line}\n`).join(''))
    .join('\n');
  return `${header}\n${body}}\n`;
}

/** `f32[1, "seq", ?]`; `f32[*]` when even the rank is unknown. */
export function formatType(dtype: DType, shape: Shape): string {
  if (shape === undefined) return `${DTYPE_SHORT[dtype]}[*]`;
  const dims = shape.map((d) => (d === null ? '?' : typeof d === 'string' ? quote(d) : formatInt(d, 'dimension')));
  return `${DTYPE_SHORT[dtype]}[${dims.join(', ')}]`;
}

/** `%name : type` and, when shown, the value's range. */
type Typed = (v: Value) => string;

function printConstant(v: Value, limit: number, typed: Typed): string {
  const t = v.constant;
  if (!t) throw new FhecError(`constant ${formatName('%', v.name)} has no data`);
  let tensor: string;
  try {
    tensor = formatTensor(t, limit);
  } catch (e) {
    if (e instanceof FhecError && !e.where.field) throw new FhecError(e.message, { ...e.where, field: `constant ${v.name}` });
    throw e;
  }
  let line = `const ${typed(v)} = ${tensor}`;
  // The tensor's own type is implied by the value's; spell it out only where they differ.
  if (!sameType(v, t)) line += ` : ${formatType(t.dtype, [...t.dims])}`;
  return line;
}

function sameType(v: Value, t: LazyTensor): boolean {
  if (v.dtype !== t.dtype || v.shape === undefined || v.shape.length !== t.dims.length) return false;
  return v.shape.every((d, i) => d === t.dims[i]);
}

/** `dense<[...]>` for small tensors, `weight<"location">` for large ones (or ones without bytes). */
function formatTensor(t: LazyTensor, limit: number): string {
  if (numel(t.dims) > limit || t instanceof UnavailableTensor) return `weight<${quote(t.location)}>`;
  const data = t.load().data;
  // Values the dtype can hold are written in their shortest form and rounded to the dtype on parse;
  // anything else (e.g. 0.1 in a float32 tensor built without rounding) is written `raw` as float64.
  let exact = true;
  for (let i = 0; i < data.length && exact; i++) exact = isRepresentable(data[i]!, t.dtype);
  const dt: DType = exact ? t.dtype : 'float64';
  const parts = new Array<string>(data.length);
  for (let i = 0; i < data.length; i++) {
    const x = data[i]!;
    parts[i] = isFloat(dt) || !Number.isInteger(x) ? formatFloat(x, dt) : formatInt(x);
  }
  return `dense<${exact ? '' : 'raw '}[${parts.join(', ')}]>`;
}

function printNode(node: Node, limit: number, typed: Typed): string {
  const outs = node.outputs.length
    ? node.outputs.map(typed).join(', ')
    : '()';
  const op = node.domain === '' ? formatIdent(node.op) : `${formatIdent(node.domain)}::${formatIdent(node.op)}`;
  const ins = node.inputs.map((v) => (v === null ? '_' : formatName('%', v.name))).join(', ');
  let line = `${outs} = ${op}(${ins})`;
  const attrs = Object.entries(node.attrs);
  if (attrs.length) {
    const fmt = ([k, a]: [string, AttrValue]) => {
      try {
        return `${formatIdent(k)} = ${formatAttr(a, limit)}`;
      } catch (e) {
        if (e instanceof FhecError) throw new FhecError(e.message, { node: nodeLabel(node), field: `attribute ${k}` });
        throw e;
      }
    };
    line += ` {${attrs.map(fmt).join(', ')}}`;
  }
  if (node.name !== '') line += ` name ${quote(node.name)}`;
  return line;
}

export function formatAttr(a: AttrValue, limit = DEFAULT_INLINE_LIMIT): string {
  switch (a.kind) {
    case 'int':
      return formatInt(a.value);
    case 'float':
      return formatFloats([a.value], false);
    case 'string':
      return quote(a.value);
    case 'ints':
      return a.value.length ? `[${a.value.map((x) => formatInt(x)).join(', ')}]` : '[] : ints';
    case 'floats':
      return a.value.length ? formatFloats(a.value, true) : '[] : floats';
    case 'strings':
      return a.value.length ? `[${a.value.map(quote).join(', ')}]` : '[] : strings';
    case 'tensor':
      return `${formatTensor(a.value, limit)} : ${formatType(a.value.dtype, [...a.value.dims])}`;
  }
}

/**
 * Float attributes usually come from ONNX's float32 fields. When all values are float32 and that
 * shortens them (9.999999747378752e-6 -> 1e-5), print the float32 form and mark it `: f32`.
 */
function formatFloats(xs: number[], list: boolean): string {
  const f64 = xs.map((x) => formatFloat(x));
  let body = f64;
  let suffix = '';
  if (xs.every((x) => isRepresentable(x, 'float32'))) {
    const f32 = xs.map((x) => formatFloat(x, 'float32'));
    if (f32.some((s, i) => s !== f64[i])) {
      body = f32;
      suffix = ' : f32';
    }
  }
  return (list ? `[${body.join(', ')}]` : body[0]!) + suffix;
}
