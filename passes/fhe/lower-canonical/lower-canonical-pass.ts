// lower-canonical{slots=S}: the canonical transformer graph (calibrated) to one unmanaged FHE program
// (lower-model.ts), packed for S slots (default: the source's, e.g. the smallest ring degree the cost
// table prices). The graph comes with the unit (canonicalSource); textual FHE IR is already lowered.

import type { Graph } from '../../../ir/graph/types.js';
import type { Pass } from '../../pass.js';
import { multiplicativeDepth } from '../analysis/depth.js';
import { lowerSource, setAttrs, type FheSource, type FheUnit } from '../pipeline/unit.js';
import { lowerCanonicalModel, type LowerModelOptions, type LoweredModel } from './lower-model.js';

/** The unit source that lowers a calibrated canonical graph at any slot count. */
export function canonicalSource(graph: Graph, options: Omit<LowerModelOptions, 'slots'>, defaultSlots: number, name = graph.name || 'model'): FheSource<LoweredModel> {
  return { kind: 'canonical', name, defaultSlots, lower: (slots) => lowerCanonicalModel(graph, { ...options, slots }) };
}

export const lowerCanonicalPass: Pass<FheUnit, { slots?: number }> = {
  name: 'lower-canonical',
  summary: 'lower the calibrated canonical graph to an unmanaged FHE program (approximations fitted to the calibrated ranges)',
  reads: 'canonical',
  writes: 'fhe',
  options: [{ name: 'slots', type: 'int', help: 'slot count to pack for (N/2; default: the source\'s)' }],
  run(unit, o) {
    const lowered = lowerSource(unit, 'canonical', 'lower-canonical', o.slots);
    const slots = lowered.program.slots;
    const depth = multiplicativeDepth(lowered.program);
    setAttrs(unit.program, { 'mgmt.depth': depth });
    const approximations = 'probes' in lowered ? (lowered as unknown as LoweredModel).probes.length : 0;
    return {
      changed: true,
      stats: { slots, ops: lowered.program.ops.length, depth, approximations },
      notes: [],
      error: { maxAbs: 0, how: 'the approximation errors are per nonlinearity (probes), against their targets' },
    };
  },
};
