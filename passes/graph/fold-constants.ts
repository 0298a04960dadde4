// Constant folding: evaluates, with the reference interpreter, every node whose inputs are all
// constants (shape arithmetic, masks, RoPE tables of a specialized graph), and turns Shape/Size of
// fully known shapes into constants. Folded values keep their names, so later passes and error
// messages still point at the exporter's names.

import { isInteger } from '../../ir/dtype.js';
import type { DType } from '../../ir/dtype.js';
import type { Graph, LazyTensor, Node, Value } from '../../ir/graph/types.js';
import { MaterializedTensor } from '../../ir/graph/types.js';
import { inferGraph } from '../../ir/ops/infer-graph.js';
import { Tensor } from '../../ir/tensor.js';
import type { WeightRecipe } from '../../ir/weights/recipe.js';
import { evalNode } from '../../runtime/reference/interpreter.js';
import { isOpSupported } from '../../runtime/reference/registry.js';
import { result, type Pass } from '../pass.js';
import { eliminateDeadCode } from './dce.js';

export interface FoldOptions {
  /** Do not fold a node whose inputs and outputs together exceed this many elements. */
  'max-elements': number;
}

const NON_DETERMINISTIC = new Set(['RandomNormal', 'RandomUniform', 'RandomNormalLike', 'RandomUniformLike', 'Multinomial', 'Bernoulli']);

/**
 * Ops that only change how one weight is stored (its dtype or layout), in linear time. Folded whatever
 * their size when the result holds no more elements than the weight: the size limit is there to keep
 * folding from materializing large tensors the model does not hold, and these hold the same values
 * (e.g. an fp16 tied embedding read through Cast to float and Transpose for the lm_head).
 */
const STORAGE_OPS = new Set(['Cast', 'Transpose', 'Reshape', 'Squeeze', 'Unsqueeze', 'Flatten', 'Identity']);

function changesStorageOnly(node: Node, sizes: readonly (number | undefined)[]): boolean {
  if (node.domain !== '' || !STORAGE_OPS.has(node.op) || node.outputs.length !== 1) return false;
  const [input, output] = [sizes[0], sizes.at(-1)];
  return input !== undefined && output !== undefined && output <= input;
}

/**
 * A storage-only fold of a large weight, kept lazy: its values are computed from the weight's on load(),
 * so a graph priced without its weights (`fhec compile --cost-only`) never reads them. (Folded eagerly,
 * the fp16 tied embedding of a Llama-3.2-1B shape, 262 M values read through Cast and Transpose, took
 * 20 s and 6 GiB before anything was priced.)
 */
class StorageFoldTensor implements LazyTensor {
  constructor(
    private readonly node: Node,
    private readonly input: LazyTensor,
    private readonly opset: number,
    readonly dtype: DType,
    readonly dims: readonly number[],
  ) {}
  get location(): string {
    return `${this.node.op.toLowerCase()}(${this.input.location})`;
  }
  get byteLength(): number {
    return this.dims.reduce((a, d) => a * d, 1) * 8;
  }
  /** Cast, a 2-D transpose and the reshapes have recipes; other storage ops do not. */
  recipe(): WeightRecipe | undefined {
    const of = this.input.recipe?.();
    if (!of) return undefined;
    const op = this.node.op;
    if (op === 'Cast') return { op: 'cast', of, dtype: this.dtype };
    if (op === 'Transpose') {
      const perm = this.node.attrs['perm'];
      const ok = this.input.dims.length === 2 && (!perm || (perm.kind === 'ints' && perm.value[0] === 1 && perm.value[1] === 0));
      return ok ? { op: 'transpose', of } : undefined;
    }
    return { op: 'reshape', of, dims: [...this.dims] };
  }
  /** Recomputed on each load (a storage op is linear time): the process keeps no second copy of a weight. */
  load(): Tensor {
    const args = this.node.inputs.map((v, k) => (k === 0 ? this.input.load() : v ? v.constant!.load() : null));
    return evalNode(this.node, args, this.opset)[0]!;
  }
}

function elements(v: Value): number | undefined {
  if (!v.shape) return undefined;
  let n = 1;
  for (const d of v.shape) {
    if (typeof d !== 'number') return undefined;
    n *= d;
  }
  return n;
}

function makeConstant(graph: Graph, v: Value, t: Tensor): void {
  v.constant = new MaterializedTensor(t, 'folded');
  v.dtype = t.dtype;
  v.shape = [...t.dims];
  delete v.producer;
  graph.constants.push(v);
}

/** Shape and Size depend only on the input's shape, not its values. */
function foldShapeOnly(node: Node, opset: number): Tensor | undefined {
  const x = node.inputs[0];
  if (!x?.shape || !x.shape.every((d) => typeof d === 'number')) return undefined;
  const dims = x.shape as number[];
  if (node.op === 'Size') return Tensor.scalar('int64', dims.reduce((a, d) => a * d, 1));
  const r = dims.length;
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
  const start = opset >= 15 && node.attrs.start ? clamp(node.attrs.start.value as number) : 0;
  const end = opset >= 15 && node.attrs.end ? clamp(node.attrs.end.value as number) : r;
  const data = dims.slice(start, Math.max(start, end));
  return Tensor.from('int64', [data.length], data);
}

export function foldConstants(graph: Graph, maxElements: number): number {
  let folded = 0;
  const kept: Node[] = [];
  for (const node of graph.nodes) {
    const opset = graph.opsets[node.domain] ?? graph.opsets[''] ?? 17;
    let outs: Tensor[] | undefined;
    if (node.domain === '' && (node.op === 'Shape' || node.op === 'Size')) {
      const t = foldShapeOnly(node, opset);
      if (t) outs = [t];
    } else if (
      !NON_DETERMINISTIC.has(node.op) &&
      node.inputs.every((v) => v === null || v.constant) &&
      isOpSupported(node.domain, node.op)
    ) {
      const sizes = [...node.inputs.filter((v): v is Value => v !== null), ...node.outputs].map(elements);
      const total = sizes.reduce<number>((a, n) => a + (n ?? 0), 0);
      // A weight in external data read through a storage op stays lazy at any size: its recipe lets a
      // plan reference it (`--stream-weights`) instead of holding the values.
      const external = node.inputs[0]?.constant?.recipe?.() !== undefined;
      if (total <= maxElements && !(external && changesStorageOnly(node, sizes))) {
        outs = evalNode(node, node.inputs.map((v) => (v ? v.constant!.load() : null)), opset);
      } else if (changesStorageOnly(node, sizes)) {
        const out = node.outputs[0]!;
        const lazy = new StorageFoldTensor(node, node.inputs[0]!.constant!, opset, out.dtype, out.shape as number[]);
        out.constant = lazy;
        delete out.producer;
        graph.constants.push(out);
        folded++;
        continue;
      }
    }
    if (outs) {
      node.outputs.forEach((o, i) => makeConstant(graph, o, outs![i]!));
      folded++;
    } else {
      kept.push(node);
    }
  }
  graph.nodes = kept;
  return folded;
}

export const foldConstantsPass: Pass<Graph, FoldOptions> = {
  name: 'fold-constants',
  summary: 'evaluate nodes with constant inputs (and Shape of known shapes); then drop dead code',
  reads: 'graph',
  writes: 'graph',
  options: [{ name: 'max-elements', type: 'int', help: 'largest fold (input+output elements)', default: 1 << 20 }],
  run(graph, opts) {
    let total = 0;
    // Folding exposes more known shapes, which exposes more folds: iterate to a fixpoint.
    for (;;) {
      inferGraph(graph);
      const n = foldConstants(graph, opts['max-elements']);
      total += n;
      if (n === 0) break;
    }
    const dce = eliminateDeadCode(graph);
    const intConsts = graph.constants.filter((c) => isInteger(c.dtype)).length;
    return result(total > 0, { folded: total, removedNodes: dce.nodes, removedConstants: dce.constants, intConstants: intConsts });
  },
};
