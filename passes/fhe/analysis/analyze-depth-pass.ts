// analyze-depth: annotates the program with its multiplicative depth (mgmt.depth): the levels an
// unmanaged program needs without refreshes, or those a managed one consumes. Changes no op.

import type { Pass } from '../../pass.js';
import { setAttrs, type FheUnit } from '../pipeline/unit.js';
import { fheCost } from './cost.js';

export const analyzeDepthPass: Pass<FheUnit, Record<string, never>> = {
  name: 'analyze-depth',
  summary: 'annotate mgmt.depth: the levels the program needs (unmanaged) or consumes (managed)',
  reads: 'fhe',
  writes: 'fhe',
  options: [],
  run(unit) {
    const depth = fheCost(unit.program).depth;
    setAttrs(unit.program, { 'mgmt.depth': depth });
    return { changed: false, stats: { depth }, notes: [] };
  },
};
