// The contract between the interpreter and the op kernels, plus the small helpers every kernel uses.
// Kernels compute in float64 and round each output to its dtype (castArray), so a float32 graph
// rounds like float32 at op boundaries and integer results wrap like the C types.

import type { DType } from '../../ir/dtype.js';
import { FhecError, nodeLabel } from '../../ir/errors.js';
import type { Node } from '../../ir/graph/types.js';
import { castArray } from '../../ir/numeric.js';
import { numel, Tensor } from '../../ir/tensor.js';

export interface KernelContext {
  readonly node: Node;
  /** Opset version of the node's domain. */
  readonly opset: number;
}

/** Computes a node's outputs; an entry may be null for an optional output the kernel does not produce. */
export type Kernel = (ctx: KernelContext, inputs: readonly (Tensor | null)[]) => (Tensor | null)[];

export function fail(ctx: KernelContext, message: string, field?: string): never {
  throw new FhecError(message, { node: nodeLabel(ctx.node), field });
}

/** A required input. */
export function input(ctx: KernelContext, inputs: readonly (Tensor | null)[], i: number, name: string): Tensor {
  const t = inputs[i];
  if (!t) fail(ctx, `required input ${i} (${name}) is missing`);
  return t;
}

/** A new tensor over freshly computed values (rounded in place to `dtype`). */
export function result(dtype: DType, dims: readonly number[], data: Float64Array): Tensor {
  return new Tensor(dtype, [...dims], castArray(data, dtype));
}

export function shapeStr(dims: readonly number[]): string {
  return `[${dims.join(', ')}]`;
}

/** Normalizes a possibly negative axis into [0, rank). */
export function normAxis(ctx: KernelContext, axis: number, rank: number, what = 'axis'): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) fail(ctx, `${what} ${axis} is out of range for rank ${rank}`);
  return a;
}

/** The dtype a node declares for output i, if the graph knows it; else `fallback`. */
export function declaredDtype(ctx: KernelContext, i: number, fallback: DType): DType {
  return ctx.node.outputs[i]?.dtype ?? fallback;
}

export function product(dims: readonly number[], from = 0, to = dims.length): number {
  let n = 1;
  for (let i = from; i < to; i++) n *= dims[i]!;
  return n;
}

export { numel };
