// CKKS parameters for a canonical model plan. Without a fixed ring degree, the cost-driven search
// (passes/fhe/parameter-search.ts) lowers the model once per slot count, places refreshes for every
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

import { FhecError } from '../ir/errors.js';
import type { FheProgram } from '../ir/fhe/types.js';
import { hasRingDegree, type CostTable } from '../ir/ckks/cost-table.js';
import { fheChain, selectParameters, topLevel, type CkksParameters } from '../ir/ckks/params.js';
import type { LoweredModel } from '../passes/fhe/lower-canonical/lower-model.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { programKeys, searchParameters, type Candidate, type ParameterSearchResult, type PrecisionCheck, type RefreshPlanner } from '../passes/fhe/parameters/parameter-search.js';
import { predictLatency } from '../passes/fhe/analysis/predict-latency.js';
import { placeRefreshes } from '../passes/fhe/refresh/refresh-placement.js';
import { placeRefreshesGreedy } from '../passes/fhe/refresh/refresh-greedy.js';
import { coefficientBound, DEFAULT_HIDING_BITS, minRefreshLevel, modulusBitsAt } from '../runtime/refresh/mask.js';

export type Placement = 'optimal' | 'greedy';

/** The scale the approximations and weights were tuned at. */
export const MODEL_SCALE_BITS = 40;
/** Bits above the scale in the first prime (and the special prime): the fixed rule's 60-bit primes. */
export const MODEL_INTEGER_BITS = 20;
/**
 * Beam width of the optimal placement (beyond it the DP keeps the best states; see
 * refresh-placement.ts). On model A, 500 finds what 200,000 finds, in about a second per plan.
 */
const OPTIMAL_MAX_STATES = 500;

export interface Placed {
  /** Unmanaged, refreshes inserted. */
  placed: FheProgram;
  refreshes: number;
  greedyRefreshes: number;
}

/**
 * Refreshes for `levels` chain levels, every value kept at level >= `minLevel` (L = levels - minLevel
 * between refreshes): greedy, or the optimal DP when it needs fewer. Undefined when some op needs more
 * than L levels by itself.
 */
export function placeModelRefreshes(program: FheProgram, levels: number, placement: Placement = 'optimal', minLevel = 1): Placed | undefined {
  const L = levels - minLevel;
  if (L < 1) return undefined;
  let greedy;
  try {
    greedy = placeRefreshesGreedy(program, L);
  } catch (e) {
    // An op that multiplies more than L levels at once: this chain is too short for it.
    if (e instanceof FhecError) return undefined;
    throw e;
  }
  const out: Placed = { placed: greedy.program, refreshes: greedy.refreshed.length, greedyRefreshes: greedy.refreshed.length };
  if (placement === 'optimal') {
    const best = placeRefreshes(program, { levels: L, maxStates: OPTIMAL_MAX_STATES });
    if (best.count <= out.refreshes) {
      out.placed = best.program;
      out.refreshes = best.count;
    }
  }
  return out;
}

/** Manages scales with the inputs at the top and refreshes at level >= 1. */
export function manageModel(placed: FheProgram, params: CkksParameters): FheProgram {
  return manageScales(placed, { chain: fheChain(params), topScale: params.scale, inputLevel: topLevel(params) });
}

/** The fixed rule: the most levels `ringDegree` holds at 128-bit security (or exactly `levels`). */
export function fixedModelParameters(ringDegree: number, scaleBits = MODEL_SCALE_BITS, levels?: number): CkksParameters {
  if (levels !== undefined) return selectParameters({ depth: levels, ringDegree, scaleBits, integerBits: MODEL_INTEGER_BITS });
  for (let L = 40; L >= 1; L--) {
    try {
      return selectParameters({ depth: L, ringDegree, scaleBits, integerBits: MODEL_INTEGER_BITS });
    } catch {
      // fewer levels
    }
  }
  throw new FhecError(`ring degree ${ringDegree} holds no level at ${scaleBits}-bit scale`);
}

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

export interface ModelParameterOptions<T = LoweredModel> {
  costs: CostTable;
  /**
   * Bound on |x| of anything a refresh or carry could mask in a lowered model (before placement: a
   * value's bound does not depend on where it is refreshed), and whether caches are carried.
   */
  maskBound?: (lowered: T) => { bound: number; carriesCache: boolean };
  /** Default: every ring degree the cost table has. */
  ringDegrees?: number[];
  /** Default: [40]. */
  scaleBits?: number[];
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

// Every candidate runs at the tuned scale (see the header): nothing to reject per candidate.
const tunedScale: PrecisionCheck = () => ({});

/**
 * Searches ring degree and chain length for a model; `lower` builds the lowered model (or anything
 * carrying an unmanaged program) for a slot count, and is called at most once per slot count.
 */
export function searchModelParameters<T extends { program: FheProgram } = LoweredModel>(
  lower: (slots: number) => T,
  options: ModelParameterOptions<T>,
): ModelParameterChoice<T> {
  const ms = { lower: 0, place: 0, search: 0 };
  const t0 = performance.now();
  const lowered = new Map<number, T>();
  const build = (slots: number): FheProgram => {
    const t = performance.now();
    const l = lower(slots);
    lowered.set(slots, l);
    ms.lower += performance.now() - t;
    return l.program;
  };
  // The placement of each (program, levels), for the chosen candidate's record.
  const placements = new Map<FheProgram, Map<number, Placed>>();
  const minLevels = new Map<string, number>();
  const chainKey = (p: CkksParameters, levels: number) => `${p.ringDegree}:${p.scale}:${levels}`;
  const bounds = new Map<FheProgram, { bound: number; carriesCache: boolean }>();
  const boundOf = (program: FheProgram) => {
    if (!bounds.has(program)) bounds.set(program, options.maskBound!([...lowered.values()].find((l) => l.program === program)!));
    return bounds.get(program)!;
  };
  const planner: RefreshPlanner = (program, levels, { params }) => {
    const mb = options.maskBound ? boundOf(program) : undefined;
    const floor = mb ? modelMinLevel(params, mb.bound, mb.carriesCache) : { level: 1 };
    if ('refused' in floor) return floor;
    minLevels.set(chainKey(params, levels), floor.level);
    const t = performance.now();
    // Candidates are priced with the greedy placement (fast); the chosen one is re-placed below.
    const p = placeModelRefreshes(program, levels, 'greedy', floor.level);
    ms.place += performance.now() - t;
    if (!p) return undefined;
    if (!placements.has(program)) placements.set(program, new Map());
    placements.get(program)!.set(levels, p);
    return { refreshes: p.refreshes, program: p.placed, inputLevel: levels };
  };
  const search = searchParameters({
    build,
    costs: options.costs,
    refresh: planner,
    ringDegrees: options.ringDegrees,
    scaleBits: options.scaleBits ?? [MODEL_SCALE_BITS],
    integerBits: MODEL_INTEGER_BITS,
    precision: tunedScale,
  });
  ms.search = performance.now() - t0 - ms.lower - ms.place;
  const best = search.best;
  if (!best) {
    const reasons = [...new Set(search.candidates.map((c) => c.reason).filter((r) => r))].slice(0, 3).join('; ');
    throw new FhecError(`no CKKS parameters fit the model within 128-bit security and the key budget (${reasons})`);
  }
  const l = lowered.get(best.params.ringDegree / 2)!;
  const p = placements.get(l.program)!.get(best.candidate.levels)!;
  const choice: ModelParameterChoice<T> = {
    params: best.params,
    lowered: l,
    placed: p.placed,
    // Managed by the search with the planner's input level (the top), as manageModel does.
    managed: best.program,
    refreshes: p.refreshes,
    greedyRefreshes: p.greedyRefreshes,
    minLevel: minLevels.get(chainKey(best.params, best.candidate.levels)) ?? 1,
    candidate: best.candidate,
    search,
    ms,
  };
  if ((options.placement ?? 'optimal') === 'optimal') {
    // The chosen chain gets the optimal placement when it needs fewer refreshes and is not predicted slower.
    const t = performance.now();
    const o = placeModelRefreshes(l.program, best.candidate.levels, 'optimal', choice.minLevel);
    ms.place += performance.now() - t;
    if (o && o.refreshes < p.refreshes) {
      const managed = manageModel(o.placed, best.params);
      const predicted = predictModelLatency(managed, best.params, options.costs).ms;
      if (predicted !== undefined && predicted <= (best.candidate.latencyMs ?? Infinity) * 1.0001) {
        Object.assign(choice, { placed: o.placed, managed, refreshes: o.refreshes, candidate: { ...best.candidate, latencyMs: predicted, refreshes: o.refreshes } });
      }
    }
  }
  return choice;
}

export interface ModelLatency {
  ms?: number;
  /** Why there is no prediction: the cost table lacks N, or the keys exceed the budget. */
  reason?: string;
}

/** Predicted latency of a managed model program, priced as the search prices its candidates. */
export function predictModelLatency(managed: FheProgram, params: CkksParameters, costs: CostTable): ModelLatency {
  if (!hasRingDegree(costs, params.ringDegree)) return { reason: `the cost table has no timings for N=${params.ringDegree}` };
  try {
    const { rotationKeySteps } = programKeys(managed, params);
    return { ms: predictLatency(managed, costs, { rotationKeySteps }).totalMs };
  } catch (e) {
    if (e instanceof FhecError) return { reason: e.message };
    throw e;
  }
}
