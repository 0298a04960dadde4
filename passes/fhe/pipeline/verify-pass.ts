// verify: the FHE IR verifier (SSA, layouts, typing rules recomputed; managed programs need concrete
// types and a chain) as a pass, so a pipeline can check where it wants to.

import { verifyFhe } from '../../../ir/fhe/verify.js';
import type { Pass } from '../../pass.js';
import type { FheUnit } from './unit.js';

export const verifyPass: Pass<FheUnit, Record<string, never>> = {
  name: 'verify',
  summary: 'check SSA, layouts and the level/scale typing rules (managed programs: every type concrete)',
  reads: 'fhe',
  writes: 'fhe',
  options: [],
  run(unit) {
    verifyFhe(unit.program, { managed: !!unit.program.chain });
    return { changed: false, stats: { ops: unit.program.ops.length }, notes: [] };
  },
};
