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
// log2 Q_l >= log2(2 Delta B) + 40 + log2 N + 2, B the bound of the refreshed value; level 0, the first
// prime alone, never does). The floor is per value (modelFloors): a value that may be refreshed keeps
// to the lowest level r(B) its own bound fits, a KV-cache output one more (the evaluator moves its slots,
// one level, before masking), and a value nothing reads (the logits) may go down to level 0; inputs
// are encrypted at the top. A chain where some product cannot sit above its floor is out.

import { FhecError } from '../ir/errors.js';
import { isMultiplication, type FheProgram } from '../ir/fhe/types.js';
import { hasRingDegree, type CostTable } from '../ir/ckks/cost-table.js';
import { fheChain, selectParameters, topLevel, type CkksParameters } from '../ir/ckks/params.js';
import type { LoweredModel } from '../passes/fhe/lower-canonical/lower-model.js';
import { manageScales } from '../passes/fhe/manage.js';
import { programKeys, searchParameters, type Candidate, type ParameterSearchResult, type PrecisionCheck, type RefreshPlanner } from '../passes/fhe/parameter-search.js';
import { predictLatency } from '../passes/fhe/predict-latency.js';
import { placeRefreshes } from '../passes/fhe/refresh-placement.js';
import { placeRefreshesGreedy } from '../passes/fhe/refresh-greedy.js';
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
 * Refreshes for a chain whose top level is `levels`, every value v kept at level >= floor(v) (a number:
 * the same floor for all): greedy, or the optimal DP when it needs fewer. Undefined when some op needs
 * more levels than its floor leaves.
 */
export function placeModelRefreshes(program: FheProgram, levels: number, placement: Placement = 'optimal', floor: number | ((name: string) => number) = 1): Placed | undefined {
  const floorOf = typeof floor === 'number' ? () => floor : floor;
  if (typeof floor === 'number' && levels - floor < 1) return undefined;
  let greedy;
  try {
    greedy = placeRefreshesGreedy(program, levels, floorOf);
  } catch (e) {
    // An op that multiplies more levels at once than its floor leaves: this chain is too short for it.
    if (e instanceof FhecError) return undefined;
    throw e;
  }
  const out: Placed = { placed: greedy.program, refreshes: greedy.refreshed.length, greedyRefreshes: greedy.refreshed.length };
  if (placement === 'optimal') {
    const best = placeRefreshes(program, { levels, maxStates: OPTIMAL_MAX_STATES, floor: floorOf });
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
 * What the masks need of a lowered model before placement (a value's bound does not depend on where it
 * is refreshed): a bound on |x| of each ciphertext value, and the values carried to the next step (the
 * KV-cache outputs, masked one level below where they sit).
 */
export interface MaskNeeds {
  bounds: ReadonlyMap<string, number>;
  carried: ReadonlySet<string>;
}

export interface ValueFloors {
  /** Lowest level each value may sit at. */
  floor: (name: string) => number;
  /** The lowest and highest floor of a value something reads (one that may be refreshed). */
  lowest: number;
  highest: number;
}

function maskRefusal(params: CkksParameters, bound: number, carried: boolean): string {
  const need = Math.log2(Number(coefficientBound(params.scale, bound))) + DEFAULT_HIDING_BITS + Math.log2(params.ringDegree) + 2;
  const top = topLevel(params);
  return (
    `${DEFAULT_HIDING_BITS}-bit refresh masks for bound ${bound.toPrecision(3)} need ${need.toFixed(0)} bits at the refresh level` +
    `${carried ? ' (one level above it for the cache carries)' : ''}; this chain has ${modulusBitsAt(params, top - 1).toFixed(0)} bits below the top`
  );
}

/**
 * The lowest level each value of an unmanaged model program may sit at: r(B) for a value something
 * reads (it may be refreshed: the lowest level whose modulus fits a 40-bit mask for its bound B), r(B)
 * + 1 for a carried KV-cache output (its slot move takes a level before the mask), 0 for the rest (the
 * logits). A refusal when a product (or a carried value) cannot sit at or above its floor on this chain.
 */
export function modelFloors(program: FheProgram, params: CkksParameters, needs: MaskNeeds): ValueFloors | { refused: string } {
  const top = topLevel(params);
  const read = new Set<string>();
  for (const op of program.ops) if (op.kind !== 'output') for (const a of op.args) read.add(a.name);
  const byBound = new Map<number, number>();
  const refreshLevel = (b: number): number => {
    if (!byBound.has(b)) byBound.set(b, minRefreshLevel(params, params.scale, b, DEFAULT_HIDING_BITS));
    return byBound.get(b)!;
  };
  const floors = new Map<string, number>();
  let lowest = Infinity;
  let highest = 0;
  for (const op of program.ops) {
    const v = op.result;
    if (!v || v.type.kind !== 'ct') continue;
    const carried = needs.carried.has(v.name);
    if (!carried && !read.has(v.name)) continue;
    const bound = needs.bounds.get(v.name);
    if (bound === undefined) throw new Error(`internal: no mask bound for %${v.name}`);
    const r = refreshLevel(bound);
    // A product sits at most at top - 1; an input, rotation or sum of inputs may sit at the top.
    const highestPossible = isMultiplication(op.kind) ? top - 1 : top;
    const f = r < 0 ? Infinity : r + (carried ? 1 : 0);
    if (f > highestPossible && (carried || isMultiplication(op.kind))) return { refused: maskRefusal(params, bound, carried) };
    const floor = Math.min(f, top);
    floors.set(v.name, floor);
    if (read.has(v.name)) {
      lowest = Math.min(lowest, floor);
      highest = Math.max(highest, floor);
    }
  }
  return { floor: (name) => floors.get(name) ?? 0, lowest: lowest === Infinity ? 0 : lowest, highest };
}

export interface ModelParameterOptions<T = LoweredModel> {
  costs: CostTable;
  /** What the refresh and carry masks need of a lowered model (per-value floors); default: floor 1 for all. */
  maskNeeds?: (lowered: T) => MaskNeeds;
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
  /** The lowest level each value may sit at (modelFloors). */
  floors: ValueFloors;
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
  const floorsByChain = new Map<string, ValueFloors>();
  const chainKey = (p: CkksParameters, levels: number) => `${p.ringDegree}:${p.scale}:${levels}`;
  const needs = new Map<FheProgram, MaskNeeds>();
  const needsOf = (program: FheProgram) => {
    if (!needs.has(program)) needs.set(program, options.maskNeeds!([...lowered.values()].find((l) => l.program === program)!));
    return needs.get(program)!;
  };
  const planner: RefreshPlanner = (program, levels, { params }) => {
    const floors: ValueFloors | { refused: string } = options.maskNeeds ? modelFloors(program, params, needsOf(program)) : { floor: () => 1, lowest: 1, highest: 1 };
    if ('refused' in floors) return floors;
    floorsByChain.set(chainKey(params, levels), floors);
    const t = performance.now();
    // Candidates are priced with the greedy placement (fast); the chosen one is re-placed below.
    const p = placeModelRefreshes(program, levels, 'greedy', floors.floor);
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
    floors: floorsByChain.get(chainKey(best.params, best.candidate.levels))!,
    candidate: best.candidate,
    search,
    ms,
  };
  if ((options.placement ?? 'optimal') === 'optimal') {
    // The chosen chain gets the optimal placement when it needs fewer refreshes and is not predicted slower.
    const t = performance.now();
    const o = placeModelRefreshes(l.program, best.candidate.levels, 'optimal', choice.floors.floor);
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
