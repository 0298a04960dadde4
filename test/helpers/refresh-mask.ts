// Kernel tests that refresh at level 0 (greedy placement on short chains): the widest mask (at most
// 16 bits) every refresh point's bound leaves room for in the modulus there.

import type { CkksParameters } from '../../ir/ckks/params.js';
import type { FheProgram } from '../../ir/fhe/types.js';
import { maskHeadroomBits } from '../../runtime/refresh/mask.js';

export function widestMask(program: FheProgram, params: CkksParameters, bounds: ReadonlyMap<string, number>): number {
  let k = 16;
  for (const op of program.ops) {
    if (op.kind !== 'refresh') continue;
    const x = op.args[0]!;
    k = Math.min(k, Math.floor(maskHeadroomBits(params, x.type.level!, x.type.scale!) - Math.log2(bounds.get(x.name)!)) - 1);
  }
  return Math.max(k, 0);
}
