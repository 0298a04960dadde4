// What every nonlinear kernel reports: its cost counted from the ops it actually emitted (so the
// report cannot drift from the code), and the approximations it used with their interval and error.

import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheValue } from '../../../ir/fhe/types.js';
import type { Approximation } from '../../approx/approximation.js';
import { valueDepths } from '../depth.js';

export interface KernelCost {
  rotations: number;
  /** ct x ct multiplications. */
  ctMultiplications: number;
  /** ct x plaintext multiplications (masks, scalars, cos/sin tables). */
  plainMultiplications: number;
  /** Levels the kernel consumes: depth of its outputs minus the deepest input. */
  depth: number;
  /** Distinct rotation steps (Galois keys the kernel needs). */
  galoisSteps: number[];
}

/** One approximation a kernel evaluated, for the error report. */
export interface KernelApproximation {
  /** What it stands for in the kernel (e.g. 'exp(scores - shift)', '1/sqrt(norm_arg)'). */
  role: string;
  approximation: Approximation;
  interval: [number, number];
  /** Predicted max abs / rel error of the approximation on its interval (the library's measurement). */
  maxError: number;
  maxRelError: number;
  depth: number;
}

export function describeApproximation(role: string, approximation: Approximation): KernelApproximation {
  return {
    role,
    approximation,
    interval: approximation.interval,
    maxError: approximation.maxError,
    maxRelError: approximation.maxRelError,
    depth: approximation.depth,
  };
}

/** Counts the ops a kernel emits between `start()` and `finish()`. */
export class CostMeter {
  private readonly first: number;

  constructor(
    private readonly b: FheBuilder,
    private readonly inputs: readonly FheValue[],
  ) {
    this.first = b.build().ops.length;
  }

  finish(outputs: readonly FheValue[]): KernelCost {
    const program = this.b.build();
    const ops = program.ops.slice(this.first);
    const steps = new Set<number>();
    const cost: KernelCost = { rotations: 0, ctMultiplications: 0, plainMultiplications: 0, depth: 0, galoisSteps: [] };
    for (const op of ops) {
      if (op.kind === 'rotate') {
        cost.rotations++;
        steps.add(op.step!);
      } else if (op.kind === 'mul') cost.ctMultiplications++;
      else if (op.kind === 'mul_plain') cost.plainMultiplications++;
    }
    cost.galoisSteps = [...steps].sort((x, y) => x - y);
    const depths = valueDepths(program);
    const inDepth = Math.max(0, ...this.inputs.map((v) => depths.get(v.name) ?? 0));
    const outDepth = Math.max(0, ...outputs.map((v) => depths.get(v.name) ?? 0));
    cost.depth = outDepth - inDepth;
    return cost;
  }
}
