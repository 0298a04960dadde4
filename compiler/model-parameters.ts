// CKKS parameters for a canonical model plan: the rules behind the FHE pipeline's select-parameters and
// place-refresh passes (passes/fhe/parameters/select-parameters-pass.ts, passes/fhe/refresh/
// place-refresh-pass.ts) as a model plan uses them. Without a fixed ring degree, the cost-driven search
// (passes/fhe/parameters/parameter-search.ts) lowers the model once per slot count, places refreshes for every
// chain length each ring degree holds at 128-bit security, and keeps the candidate with the lowest
// latency predicted from the cost table (the client-aided refresh round trips included). With a fixed
// ring degree the chain is the longest that degree holds (the rule used before the search).
//
// Chains are [60, s x L, 60]: the first and special primes as the fixed rule had them (20 integer
// bits above the scale), s = 40 unless the caller fixes it. Precision is not judged per candidate:
// the precision analysis (passes/fhe/precision.ts) bounds a whole model only up to its first softmax
// (its sampled typical estimate does follow SEAL within 2 bits, but is not used per candidate yet), and the
// approximations and weights were tuned and checked end to end (sim and SEAL) at a 40-bit scale.
// What changes between candidates at one scale is the number of refreshes (each adds fresh encryption
// noise, far below the approximation error) and the levels ops run at, not the scale.
//
// Refreshes happen at a level whose modulus fits the key holder's 40-bit mask (runtime/refresh/mask.ts:
// log2 Q_l >= log2(2 Delta B) + 40 + log2 N + 2, B the largest bound a refresh could be placed on;
// level 0, the first prime alone, never does): with that lowest level r, a chain of L levels gives
// L - r levels between refreshes (one fewer when KV caches are carried: the evaluator moves their slots,
// one level, before masking), and inputs are encrypted at the top. A chain where no level fits is out.

import type { FheProgram } from '../ir/fhe/types.js';
import type { CostTable } from '../ir/ckks/cost-table.js';
import { topLevel, type CkksParameters } from '../ir/ckks/params.js';
import type { LoweredModel } from '../passes/fhe/lower-canonical/lower-model.js';
import type { Candidate, ParameterSearchResult } from '../passes/fhe/parameters/parameter-search.js';
import { predictProgramLatency } from '../passes/fhe/parameters/program-latency.js';
import { runFhePipeline } from '../passes/fhe/pipeline/run.js';
import { numberAttr, requireParameters, unitOf, withoutAttributes, type RefreshFloor } from '../passes/fhe/pipeline/unit.js';
import { coefficientBound, DEFAULT_HIDING_BITS, minRefreshLevel, modulusBitsAt } from '../runtime/refresh/mask.js';

export type Placement = 'optimal' | 'greedy';

/** The scale the approximations and weights were tuned at. */
const MODEL_SCALE_BITS = 40;
/** Bits above the scale in the first prime (and the special prime): the fixed rule's 60-bit primes. */
export const MODEL_INTEGER_BITS = 20;

/**
 * The lowest level values may sit at in a model plan: the lowest whose modulus fits a 40-bit mask for
 * `bound` (the largest bound a refresh or cache carry could be placed on), plus one when caches are
 * carried (their slot move takes a level before the mask). A refusal when the chain has no such level.
 */
export function modelMinLevel(params: CkksParameters, bound: number, carriesCache: boolean): { level: number } | { refused: string } {
  const r = minRefreshLevel(params, params.scale, bound, DEFAULT_HIDING_BITS);
  const need = Math.log2(Number(coefficientBound(params.scale, bound))) + DEFAULT_HIDING_BITS + Math.log2(params.ringDegree) + 2;
  const top = topLevel(params);
  const level = r < 0 ? Infinity : r + (carriesCache ? 1 : 0);
  if (level >= top) {
    return {
      refused:
        `${DEFAULT_HIDING_BITS}-bit refresh masks for bound ${bound.toPrecision(3)} need ${need.toFixed(0)} bits at the refresh level` +
        `${carriesCache ? ' (one level above it for the cache carries)' : ''}; this chain has ${modulusBitsAt(params, top - 1).toFixed(0)} bits below the top`,
    };
  }
  return { level };
}

/** The unit's refresh floor for model plans: where 40-bit masks fit each lowering's largest mask bound. */
export function modelRefreshFloor<T extends { program: FheProgram }>(maskBound: (lowered: T) => { bound: number; carriesCache: boolean }): RefreshFloor {
  const bounds = new Map<FheProgram, { bound: number; carriesCache: boolean }>();
  return (lowered, params) => {
    if (!bounds.has(lowered.program)) bounds.set(lowered.program, maskBound(lowered as T));
    const mb = bounds.get(lowered.program)!;
    return modelMinLevel(params, mb.bound, mb.carriesCache);
  };
}

export interface ModelParameterOptions<T = LoweredModel> {
  costs: CostTable;
  /**
   * Bound on |x| of anything a refresh or carry could mask in a lowered model (before placement: a
   * value's bound does not depend on where it is refreshed), and whether caches are carried.
   */
  maskBound?: (lowered: T) => { bound: number; carriesCache: boolean };
  /** Default: 40. */
  scaleBits?: number;
  placement?: Placement;
}

export interface ModelParameterChoice<T extends { program: FheProgram } = LoweredModel> {
  params: CkksParameters;
  lowered: T;
  placed: FheProgram;
  managed: FheProgram;
  refreshes: number;
  greedyRefreshes: number;
  /** The lowest level values sit at (modelMinLevel): the placement keeps top - minLevel levels between refreshes. */
  minLevel: number;
  candidate: Candidate;
  search: ParameterSearchResult;
  /** Lowering (all slot counts), refresh placement (all candidates), and the rest of the search. */
  ms: { lower: number; place: number; search: number };
}

/** The name a given cost table goes by in the pipeline (it is in the unit, not a file). */
const GIVEN_COSTS = '(given)';

/**
 * Searches ring degree and chain length for a model with the FHE passes
 * (`select-parameters,place-refresh,manage-scales`); `lower` builds the lowered model (or anything
 * carrying an unmanaged program) for a slot count, and is called at most once per slot count.
 */
export function searchModelParameters<T extends { program: FheProgram } = LoweredModel>(
  lower: (slots: number) => T,
  options: ModelParameterOptions<T>,
): ModelParameterChoice<T> {
  const unit = unitOf<T>({ name: 'model', slots: 0, constants: new Map(), ops: [] }, {
    source: { kind: 'canonical', name: 'model', lower, defaultSlots: 0 },
    ...(options.maskBound ? { refreshFloor: modelRefreshFloor(options.maskBound) } : {}),
  });
  unit.costTables.set(GIVEN_COSTS, options.costs);
  const scale = options.scaleBits !== undefined ? `,scale-bits=${options.scaleBits}` : '';
  const runs = runFhePipeline(unit, `select-parameters{costs=${GIVEN_COSTS}${scale}},place-refresh{strategy=${options.placement ?? 'optimal'}},manage-scales`);
  const best = unit.search?.best;
  if (!best || !unit.lowered || !unit.placed) throw new Error('internal: the parameter pipeline chose nothing');
  const managed = withoutAttributes(unit.program);
  const refreshes = numberAttr(unit.program, 'mgmt.refreshes', 'search')!;
  const greedyRefreshes = numberAttr(unit.program, 'mgmt.greedy_refreshes', 'search')!;
  const params = requireParameters(unit.program, 'search');
  // The optimal placement replaced the priced greedy one: the chosen candidate is re-priced.
  const candidate = refreshes < greedyRefreshes ? { ...best.candidate, latencyMs: predictProgramLatency(managed, params, options.costs).ms, refreshes } : best.candidate;
  const selectMs = runs.find((r) => r.pass === 'select-parameters')!.ms;
  return {
    params,
    lowered: unit.lowered,
    placed: withoutAttributes(unit.placed),
    managed,
    refreshes,
    greedyRefreshes,
    minLevel: numberAttr(unit.program, 'mgmt.min_level', 'search') ?? 1,
    candidate,
    search: unit.search!,
    ms: { lower: unit.ms.lower, place: unit.ms.place, search: selectMs + runs.filter((r) => r.pass !== 'select-parameters').reduce((a, r) => a + r.ms, 0) - unit.ms.lower - unit.ms.place },
  };
}
