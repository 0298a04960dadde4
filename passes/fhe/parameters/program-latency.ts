// The latency of a managed program under a cost table, priced as the parameter search prices its
// candidates (Galois keys planned within the budget, rotations composed from them).

import { FhecError } from '../../../ir/errors.js';
import type { FheProgram } from '../../../ir/fhe/types.js';
import { hasRingDegree, type CostTable } from '../../../ir/ckks/cost-table.js';
import type { CkksParameters } from '../../../ir/ckks/params.js';
import { predictLatency } from '../analysis/predict-latency.js';
import { programKeys } from './parameter-search.js';

export interface ProgramLatency {
  ms?: number;
  /** The longest chain of dependent ops (LatencyPrediction.criticalPathMs). */
  criticalPathMs?: number;
  /** Why there is no prediction: the cost table lacks N, or the keys exceed the budget. */
  reason?: string;
}

export function predictProgramLatency(managed: FheProgram, params: CkksParameters, costs: CostTable): ProgramLatency {
  if (!hasRingDegree(costs, params.ringDegree)) return { reason: `the cost table has no timings for N=${params.ringDegree}` };
  try {
    const { rotationKeySteps } = programKeys(managed, params);
    const p = predictLatency(managed, costs, { rotationKeySteps });
    return { ms: p.totalMs, criticalPathMs: p.criticalPathMs };
  } catch (e) {
    if (e instanceof FhecError) return { reason: e.message };
    throw e;
  }
}
