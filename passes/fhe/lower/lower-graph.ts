// Lowers a specialized graph (every shape concrete) of arithmetic ops to an unmanaged FHE program.
// Every graph input is encrypted (packed the way its consumers need it; see context.ts), initializers and
// folded constants stay plaintext. Unsupported ops and non-float32 tensors are refused up front, all of
// them in one error. The result carries the plan's tensor interface and the cost, per node and in total.

import { FhecError } from '../../../ir/errors.js';
import { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheProgram } from '../../../ir/fhe/types.js';
import { attrFloat, attrInt, attrInts } from '../../../ir/graph/attrs.js';
import type { Graph, Node, Value } from '../../../ir/graph/types.js';
import { numel } from '../../../ir/tensor.js';
import { fheCost, type FheCost } from '../analysis/cost.js';
import { valueDepths } from '../analysis/depth.js';
import { LowerContext, rawLayout, type Operand } from './context.js';
import { lowerBinary, lowerNeg } from './elementwise.js';
import { holdsToRuns, type PlanInterface, type TensorPacking } from './interface.js';
import { addBias, gemmContraction, lowerContraction, matMulContraction } from './matmul.js';
import { lowerReshape, lowerTranspose } from './movement.js';
import { contiguousPlacement } from './placement.js';

/** The ops the FHE lowering handles. */
export const FHE_LOWERABLE_OPS: readonly string[] = [
  'MatMul', 'Gemm', 'Add', 'Sub', 'Mul', 'Neg', 'Identity', 'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Transpose',
];

export interface LowerGraphOptions {
  /** Slots per ciphertext (ring degree / 2). */
  slots: number;
  /** The model file, for errors. */
  file?: string;
}

export interface NodeLowering {
  node: string;
  op: string;
  /** How it was lowered and its cost, as the lowering states it. */
  notes: string[];
  rotations: number;
  /** The node's ops in the lowered program: indices [start, end). */
  ops: [number, number];
  ctMultiplications: number;
  plainMultiplications: number;
  /** Multiplicative depth of the node's results (from the graph inputs). */
  depth: number;
}

export interface GraphLowering {
  /** Unmanaged: no levels, scales, rescales or relinearizations yet (passes/fhe/manage.ts adds them). */
  program: FheProgram;
  interface: PlanInterface;
  nodes: NodeLowering[];
  cost: FheCost;
}

function concreteDims(v: Value, file?: string): number[] {
  if (!v.shape || v.shape.some((d) => typeof d !== 'number')) {
    const shown = v.shape ? `[${v.shape.map((d) => d ?? '?').join(', ')}]` : 'unknown';
    throw new FhecError(`shape ${shown} is not concrete; bind its symbolic dims with --bind name=value`, { file, field: v.name });
  }
  return v.shape as number[];
}

/** Throws one FhecError naming every op the lowering lacks, or every tensor CKKS cannot carry. */
export function checkLowerable(graph: Graph, file?: string): void {
  const bad = new Map<string, string[]>();
  for (const n of graph.nodes) {
    const op = n.domain === '' || n.domain === 'ai.onnx' ? n.op : `${n.domain}::${n.op}`;
    if (n.domain !== '' && n.domain !== 'ai.onnx') bad.set(op, [...(bad.get(op) ?? []), n.name]);
    else if (!FHE_LOWERABLE_OPS.includes(n.op)) bad.set(op, [...(bad.get(op) ?? []), n.name]);
  }
  if (bad.size) {
    const list = [...bad].map(([op, nodes]) => `${op} (${nodes.join(', ')})`);
    throw new FhecError(`op(s) not supported under encryption: ${list.join('; ')} (supported: ${FHE_LOWERABLE_OPS.join(', ')})`, { file });
  }
  const typed = [...graph.inputs, ...graph.nodes.flatMap((n) => n.outputs)].filter((v) => !v.constant && v.dtype !== 'float32');
  if (typed.length) {
    const list = typed.map((v) => `'${v.name}' is ${v.dtype}`).join(', ');
    throw new FhecError(
      `${list}: CKKS computes approximately on real numbers, so only float32 tensors can be encrypted (integer results would come out approximate, i.e. wrong)`,
      { file },
    );
  }
  for (const v of [...graph.inputs, ...graph.nodes.flatMap((n) => n.outputs)]) {
    if (numel(concreteDims(v, file)) === 0) throw new FhecError('empty tensors cannot be encrypted', { file, field: v.name });
  }
}

function lowerNode(ctx: LowerContext, n: Node, args: (Operand | undefined)[], outDims: number[]): Operand {
  const node = `${n.name} (${n.op})`;
  const arg = (i: number): Operand => {
    const a = args[i];
    if (!a) throw new FhecError(`input ${i} is missing`, { node });
    return a;
  };
  switch (n.op) {
    case 'Add':
    case 'Sub':
    case 'Mul':
      return lowerBinary(ctx, n.op, arg(0), arg(1), outDims, node);
    case 'Neg':
      return lowerNeg(ctx, arg(0), node);
    case 'MatMul': {
      const [A, B] = [arg(0), arg(1)];
      return lowerContraction(ctx, A, B, matMulContraction(dimsOfOperand(A), dimsOfOperand(B), node), 1, node);
    }
    case 'Gemm': {
      const [A, B] = [arg(0), arg(1)];
      const con = gemmContraction(dimsOfOperand(A), dimsOfOperand(B), attrInt(n, 'transA', 0) !== 0, attrInt(n, 'transB', 0) !== 0, node);
      const P = lowerContraction(ctx, A, B, con, attrFloat(n, 'alpha', 1), node);
      const C = args[2];
      return C ? addBias(ctx, P, C, attrFloat(n, 'beta', 1)) : P;
    }
    case 'Identity':
    case 'Reshape':
    case 'Flatten':
    case 'Squeeze':
    case 'Unsqueeze':
      return lowerReshape(arg(0), outDims);
    case 'Transpose': {
      const x = arg(0);
      const rank = dimsOfOperand(x).length;
      return lowerTranspose(x, attrInts(n, 'perm', [...Array(rank).keys()].reverse()));
    }
    default:
      throw new FhecError(`op ${n.op} is not supported under encryption`, { node });
  }
}

function dimsOfOperand(x: Operand): number[] {
  return x.kind === 'plain' ? [...x.tensor.dims] : x.dims;
}

function programName(graph: Graph): string {
  const s = graph.name.replace(/[^A-Za-z0-9_.]/g, '_');
  return s || 'main';
}

export function lowerGraph(graph: Graph, options: LowerGraphOptions): GraphLowering {
  const { file, slots } = options;
  checkLowerable(graph, file);
  const b = new FheBuilder(programName(graph), slots);
  const inputs = graph.inputs.filter((v) => !v.constant);
  const ctx = new LowerContext(b, inputs.map((v) => ({ name: v.name, dims: concreteDims(v, file) })));
  const operands = new Map<string, Operand>();
  for (const v of inputs) {
    const dims = concreteDims(v, file);
    operands.set(v.name, { kind: 'input', dims, input: v.name, source: Int32Array.from({ length: numel(dims) }, (_, i) => i) });
  }
  for (const v of [...graph.constants, ...graph.inputs.filter((x) => x.constant)]) operands.set(v.name, { kind: 'plain', tensor: v.constant!.load() });

  const perNode: (NodeLowering & { results: string[] })[] = [];
  for (const n of graph.nodes) {
    const before = { ...ctx.cost };
    const firstOp = b.opCount;
    ctx.notes.length = 0;
    const args = n.inputs.map((v) => (v ? operands.get(v.name) : undefined));
    n.inputs.forEach((v, i) => {
      if (v && !args[i]) throw new Error(`internal: value ${v.name} has not been lowered`);
    });
    if (n.outputs.length !== 1) throw new FhecError(`${n.op} with ${n.outputs.length} outputs is not supported under encryption`, { file, node: `${n.name} (${n.op})` });
    const out = n.outputs[0]!;
    const outDims = concreteDims(out, file);
    let result: Operand;
    try {
      result = lowerNode(ctx, n, args, outDims);
    } catch (e) {
      if (!(e instanceof FhecError)) throw e;
      throw new FhecError(e.message, { file: e.where.file ?? file, node: e.where.node ?? `${n.name} (${n.op})`, field: e.where.field });
    }
    const got = dimsOfOperand(result);
    if (got.join(',') !== outDims.join(',')) {
      throw new FhecError(`lowering gives dims [${got.join(', ')}] but the graph says [${outDims.join(', ')}]`, { file, node: `${n.name} (${n.op})` });
    }
    operands.set(out.name, result);
    perNode.push({
      node: n.name,
      op: n.op,
      notes: [...ctx.notes],
      rotations: ctx.cost.rotations - before.rotations,
      ctMultiplications: ctx.cost.ctMultiplications - before.ctMultiplications,
      plainMultiplications: ctx.cost.plainMultiplications - before.plainMultiplications,
      depth: 0,
      results: result.kind === 'enc' ? result.blocks.map((blk) => blk.ct.name) : [],
      ops: [firstOp, b.opCount],
    });
  }

  const outputs: TensorPacking[] = [];
  for (const v of graph.outputs) {
    const x = operands.get(v.name);
    if (!x) throw new Error(`internal: output ${v.name} has not been lowered`);
    if (x.kind === 'plain') throw new FhecError('graph output is a constant; nothing is computed under encryption', { file, field: v.name });
    const dims = x.dims;
    const blocks = x.kind === 'enc' ? x.blocks : contiguousPlacement(numel(dims), slots).map((w) => ctx.cipher(x, w));
    const packing: TensorPacking = { name: v.name, dtype: 'float32', dims, ciphertexts: [] };
    const seen = new Set<number>();
    for (const blk of blocks) {
      const runs = holdsToRuns(blk.holds, seen);
      if (runs.length === 0) continue;
      const fhe = ctx.fheName(v.name, 'output');
      b.output(fhe, blk.ct, rawLayout(slots));
      packing.ciphertexts.push({ fhe, runs });
    }
    if (seen.size !== numel(dims)) throw new Error(`internal: output ${v.name} has ${seen.size} of ${numel(dims)} elements`);
    outputs.push(packing);
  }

  const program = b.build();
  const depths = valueDepths(program);
  const nodes = perNode.map(({ results, ...rest }) => ({ ...rest, depth: Math.max(0, ...results.map((r) => depths.get(r) ?? 0)) }));
  return { program, interface: { inputs: [...ctx.inputs.values()], outputs }, nodes, cost: fheCost(program) };
}
