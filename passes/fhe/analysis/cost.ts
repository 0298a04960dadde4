// Operation counts of an FHE program: what a lowering reports as its cost.

import type { FheProgram } from '../../../ir/fhe/types.js';
import { multiplicativeDepth } from './depth.js';

export interface FheCost {
  rotations: number;
  /** ct x ct multiplications (non-scalar). */
  ctMultiplications: number;
  plainMultiplications: number;
  additions: number;
  rescales: number;
  relinearizations: number;
  /** Multiplicative depth (levels consumed). */
  depth: number;
  /** Distinct rotation steps, i.e. the Galois keys needed. */
  galoisSteps: number[];
}

export function fheCost(program: FheProgram): FheCost {
  const steps = new Set<number>();
  const c: FheCost = { rotations: 0, ctMultiplications: 0, plainMultiplications: 0, additions: 0, rescales: 0, relinearizations: 0, depth: 0, galoisSteps: [] };
  for (const op of program.ops) {
    if (op.kind === 'rotate') {
      c.rotations++;
      steps.add(op.step!);
    } else if (op.kind === 'mul') c.ctMultiplications++;
    else if (op.kind === 'mul_plain') c.plainMultiplications++;
    else if (op.kind === 'add' || op.kind === 'sub' || op.kind === 'add_plain') c.additions++;
    else if (op.kind === 'rescale') c.rescales++;
    else if (op.kind === 'relinearize') c.relinearizations++;
  }
  c.galoisSteps = [...steps].sort((a, b) => a - b);
  c.depth = program.chain ? managedDepth(program) : multiplicativeDepth(program);
  return c;
}

/** Levels consumed by a managed program: input level minus the lowest level any output reaches. */
function managedDepth(program: FheProgram): number {
  let hi = 0;
  let lo = Infinity;
  for (const op of program.ops) {
    if (op.kind === 'input') hi = Math.max(hi, op.result!.type.level!);
    if (op.kind === 'output') lo = Math.min(lo, op.args[0]!.type.level!);
  }
  return lo === Infinity ? 0 : hi - lo;
}
