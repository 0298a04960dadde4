// place-refresh{strategy=optimal|greedy,levels=L}: inserts refresh ops into an unmanaged program so
// no stretch between refreshes needs more than L levels. Without levels: the floors select-parameters
// chose on this unit (each value kept at or above its own floor under the chain's top level), else the
// program's mgmt.refresh_levels annotation (the chain's top minus the lowest floor). 'optimal' runs the beam DP (refresh-placement.ts) and keeps it when it
// needs no more refreshes than greedy; when select-parameters priced this chain (select.predicted_ms,
// with the placement of the same strategy), it keeps it only when it needs strictly fewer refreshes
// than greedy and is not predicted slower than that price.

import { FhecError } from '../../../ir/errors.js';
import type { FheProgram } from '../../../ir/fhe/types.js';
import { fheChain, topLevel } from '../../../ir/ckks/params.js';
import type { Pass } from '../../pass.js';
import { manageScales } from '../manage/manage-scales.js';
import { refreshProductsRule } from '../manage/refresh-products.js';
import { predictProgramLatency } from '../parameters/program-latency.js';
import { annotatedParameters, attr, costTableOf, numberAttr, setAttrs, withoutAttributes, type FheUnit } from '../pipeline/unit.js';
import { placeRefreshesGreedy } from './refresh-greedy.js';
import { placeRefreshes } from './refresh-placement.js';
import type { RefreshPlacement } from './refresh-graph.js';

export interface PlaceRefreshOptions {
  strategy: 'optimal' | 'greedy';
  levels?: number;
  'max-states': number;
}

/** Beam width of the optimal placement on whole models: on model A, 500 finds what 200,000 finds, in about a second. */
export const MODEL_MAX_STATES = 500;

export const placeRefreshPass: Pass<FheUnit, PlaceRefreshOptions> = {
  name: 'place-refresh',
  summary: 'insert refresh ops so no stretch needs more than the levels between refreshes (optimal DP or greedy)',
  reads: 'fhe',
  writes: 'fhe',
  options: [
    { name: 'strategy', type: 'string', help: "'optimal' (beam DP, never worse than greedy) or 'greedy'", default: 'optimal' },
    { name: 'levels', type: 'int', help: 'levels between refreshes (default: the mgmt.refresh_levels annotation)' },
    { name: 'max-states', type: 'int', help: 'beam width of the optimal search', default: MODEL_MAX_STATES },
  ],
  run(unit, o) {
    if (o.strategy !== 'optimal' && o.strategy !== 'greedy') throw new FhecError(`place-refresh: strategy must be optimal or greedy, got '${String(o.strategy)}'`);
    const program = unit.program;
    // Per-value floors when select-parameters chose them on this program: the budget is the chain's top level.
    const params = o.levels === undefined && unit.floors ? annotatedParameters(program, 'place-refresh') : undefined;
    const floor = params ? unit.floors!.floor : undefined;
    const levels = params ? topLevel(params) : o.levels ?? numberAttr(program, 'mgmt.refresh_levels', 'place-refresh');
    if (levels === undefined) throw new FhecError('place-refresh needs levels=L, or a program annotated with mgmt.refresh_levels (run select-parameters first)');
    if (!Number.isInteger(levels) || levels < 1) throw new FhecError(`place-refresh: levels must be at least 1, got ${levels}`);
    const t0 = performance.now();
    let greedy: RefreshPlacement;
    try {
      greedy = placeRefreshesGreedy(program, levels, floor);
    } catch (e) {
      if (e instanceof FhecError && !program.chain) throw new FhecError(`the program needs more than the ${levels} levels between refreshes: ${e.message}`);
      throw e;
    }
    let chosen: { program: FheProgram; count: number } = { program: greedy.program, count: greedy.refreshed.length };
    const notes: string[] = [];
    if (o.strategy === 'optimal') {
      const best = placeRefreshes(program, { levels, maxStates: o['max-states'], ...(floor ? { floor } : {}) });
      const priced = numberAttr(program, 'select.predicted_ms', 'place-refresh');
      if (priced === undefined) {
        if (best.count <= chosen.count) chosen = { program: best.program, count: best.count };
      } else if (best.count < chosen.count && notSlower(unit, program, best.program, priced)) {
        chosen = { program: best.program, count: best.count };
      } else if (best.count < chosen.count) notes.push(`the optimal placement (${best.count}) is predicted slower than greedy's: kept greedy`);
      if (!best.exact) notes.push(`optimal search was a beam of ${o['max-states']} states (not proved optimal)`);
    }
    chosen.program.attributes = { ...(program.attributes ?? {}) };
    const budget = floor ? levels - unit.floors!.lowest : levels;
    setAttrs(chosen.program, { 'mgmt.refresh_levels': budget, 'mgmt.refreshes': chosen.count, 'mgmt.greedy_refreshes': greedy.refreshed.length });
    unit.program = chosen.program;
    unit.placed = chosen.program;
    unit.ms.place += performance.now() - t0;
    return { changed: chosen.count > 0, stats: { refreshes: chosen.count, greedy: greedy.refreshed.length, levels: budget }, notes, error: { maxAbs: 0, how: 'refreshes re-encrypt values exactly up to fresh encryption noise' } };
  },
};

/** The placed program, managed as manage-scales would, is not predicted slower than the priced one. */
function notSlower(unit: FheUnit, annotated: FheProgram, placed: FheProgram, pricedMs: number): boolean {
  const params = annotatedParameters(annotated, 'place-refresh');
  const costs = attr(annotated, 'select.costs');
  if (!params || costs === undefined) return true;
  const link = attr(annotated, 'select.link');
  const table = costTableOf(unit, String(costs), link === undefined ? undefined : String(link));
  // Managed as manage-scales' default ('priced') manages it.
  const managed = manageScales(withoutAttributes(placed), {
    chain: fheChain(params),
    topScale: params.scale,
    inputLevel: numberAttr(annotated, 'mgmt.input_level', 'place-refresh'),
    refreshProducts: refreshProductsRule(table, params.ringDegree, topLevel(params)),
  });
  const predicted = predictProgramLatency(managed, params, table).ms;
  return predicted !== undefined && predicted <= pricedMs * 1.0001;
}
