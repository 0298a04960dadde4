// analyze-cost{costs=default|FILE,link=RTT/BPMS}: annotates operation counts (cost.*) and, for a
// managed program annotated with its CKKS parameters, the latency predicted from a cost table
// (cost.predicted_ms, priced as select-parameters prices candidates) and its critical path
// (cost.critical_path_ms: the longest chain of dependent ops, what threads cannot shorten). Changes no op.

import type { Pass } from '../../pass.js';
import { predictProgramLatency } from '../parameters/program-latency.js';
import { annotatedParameters, costTableOf, setAttrs, type FheUnit } from '../pipeline/unit.js';
import { fheCost } from './cost.js';

export const analyzeCostPass: Pass<FheUnit, { costs: string; link?: string }> = {
  name: 'analyze-cost',
  summary: 'annotate op counts (cost.*) and, when managed with known parameters, the predicted latency',
  reads: 'fhe',
  writes: 'fhe',
  options: [
    { name: 'costs', type: 'string', help: "cost table: 'default' or a file from fhec calibrate-costs", default: 'default' },
    { name: 'link', type: 'string', help: 'evaluator-key holder link as RTT_MS/BYTES_PER_MS (default: the table\'s)' },
  ],
  run(unit, o) {
    const c = fheCost(unit.program);
    const refreshes = unit.program.ops.filter((op) => op.kind === 'refresh').length;
    const stats: Record<string, number> = {
      rotations: c.rotations,
      ct_mul: c.ctMultiplications,
      plain_mul: c.plainMultiplications,
      additions: c.additions,
      rescales: c.rescales,
      relinearizations: c.relinearizations,
      refreshes,
      galois_steps: c.galoisSteps.length,
    };
    const notes: string[] = [];
    const params = unit.program.chain ? annotatedParameters(unit.program, 'analyze-cost') : undefined;
    if (params) {
      const p = predictProgramLatency(unit.program, params, costTableOf(unit, o.costs, o.link));
      if (p.ms !== undefined) {
        stats.predicted_ms = p.ms;
        stats.critical_path_ms = p.criticalPathMs!;
      } else notes.push(`no latency prediction: ${p.reason}`);
    }
    setAttrs(unit.program, Object.fromEntries(Object.entries(stats).map(([k, v]) => [`cost.${k}`, v])));
    return { changed: false, stats, notes };
  },
};
