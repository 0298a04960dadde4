// Kernel tests that refresh at level 0 (greedy placement on short chains, no level budget for a mask):
// the mask policy that accepts the most hiding the modulus leaves at every refresh point there. These
// tests are about the kernels' arithmetic; the 40-bit hiding of plans is tested in refresh-exact.

import type { CkksParameters } from '../../ir/ckks/params.js';
import type { FheProgram } from '../../ir/fhe/types.js';
import { achievableHidingBits, type MaskPolicy } from '../../runtime/refresh/mask.js';

export function kernelMaskPolicy(program: FheProgram, params: CkksParameters, bounds: ReadonlyMap<string, number>): Partial<MaskPolicy> {
  let bits = Infinity;
  for (const op of program.ops) {
    if (op.kind !== 'refresh') continue;
    const x = op.args[0]!;
    bits = Math.min(bits, achievableHidingBits(params, x.type.level!, x.type.scale!, bounds.get(x.name)!));
  }
  return bits === Infinity ? {} : { minHidingBits: bits };
}
