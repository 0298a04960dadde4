// Multiplicative depth of an unmanaged FHE program: the most ct x ct or ct x pt multiplications on any
// path from an input or a refresh. It is the number of levels (rescales) the program needs.

import { FhecError } from '../../../ir/errors.js';
import type { FheProgram } from '../../../ir/fhe/types.js';

export function valueDepths(program: FheProgram): Map<string, number> {
  const depth = new Map<string, number>();
  for (const op of program.ops) {
    if (!op.result) continue;
    const ds = op.args.filter((a) => a.type.kind === 'ct').map((a) => depth.get(a.name) ?? 0);
    const d = ds.length ? Math.max(...ds) : 0;
    switch (op.kind) {
      case 'mul':
      case 'mul_plain':
        depth.set(op.result.name, d + 1);
        break;
      case 'refresh':
        // A refresh restores the top level: depth counts again from there.
        depth.set(op.result.name, 0);
        break;
      case 'rescale':
      case 'mod_switch':
      case 'relinearize':
        throw new FhecError(`${op.kind} in an unmanaged program: the scale management pass places these itself`);
      default:
        depth.set(op.result.name, d);
    }
  }
  return depth;
}

export function multiplicativeDepth(program: FheProgram): number {
  let m = 0;
  for (const d of valueDepths(program).values()) m = Math.max(m, d);
  return m;
}
