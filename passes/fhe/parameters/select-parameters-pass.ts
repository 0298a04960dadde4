// select-parameters{costs=default|FILE,link=RTT/BPMS,scale-bits=40,integer-bits=20,ring-degree=N,levels=L}:
// chooses the CKKS parameters of an unmanaged program and annotates them (ckks.ring_degree,
// ckks.bit_sizes, ckks.scale) with the refresh budget (mgmt.min_level, mgmt.refresh_levels,
// mgmt.input_level) for place-refresh and manage-scales.
//
// Without ring-degree: the cost-driven search (parameter-search.ts) over every ring degree of the cost
// table and every chain length each holds at 128-bit security, pricing each chain with the cost table
// and the refresh placement place-refresh will make (`placement`: the optimal beam DP by default, as
// the model pipeline runs it; greedy stays for greedy pipelines); it annotates select.predicted_ms, the
// chosen candidate's price. Pricing by greedy's placement misjudged chains: on model A's decode step
// greedy needs 228 refreshes on 4 levels where the optimal placement needs 115 (312 on 3), so the search
// kept 3 levels: 1.5x the refresh round trips per decode token of 4 levels, and 2.1x the bytes.
// With a canonical source (lower-canonical) each ring degree gets its own lowering (the packing
// depends on N/2 slots); textual IR fits only N = 2 x slots.
// With ring-degree: the longest chain N holds at 128-bit security (or exactly `levels`).
// Chains for fit=cost have a floor prime (ir/ckks/params.ts chainBitSizes): place-refresh keeps every
// value at level 1 or above, so q_1 is never divided by and holds the masks of level-1 refreshes.
// Refreshes keep each value at or above its floor from the unit's refresh floor rule (level 1 for all
// unless the driver sets a rule, e.g. where each value's refresh mask fits); mgmt.min_level is the
// lowest floor. A chain where some op cannot sit above its floor is refused.

import { FhecError } from '../../../ir/errors.js';
import type { FheProgram } from '../../../ir/fhe/types.js';
import { lowestComputeLevel, selectParameters, topLevel, type CkksParameters } from '../../../ir/ckks/params.js';
import type { Pass } from '../../pass.js';
import { placeRefreshesGreedy } from '../refresh/refresh-greedy.js';
import { placeRefreshes } from '../refresh/refresh-placement.js';
import { MODEL_MAX_STATES } from '../refresh/place-refresh-pass.js';
import { multiplicativeDepth } from '../analysis/depth.js';
import { costTableOf, loweringAt, parameterAttributes, setAttrs, uniformFloors, type FheUnit, type ValueFloors } from '../pipeline/unit.js';
import { latencyLowerBound } from './latency-lower-bound.js';
import { searchParameters, type PrecisionCheck, type RefreshPlanner } from './parameter-search.js';

export interface SelectParametersOptions {
  fit: 'cost' | 'depth';
  insecure: boolean;
  costs: string;
  link?: string;
  'scale-bits': number;
  'integer-bits': number;
  'ring-degree'?: number;
  levels?: number;
  /** The refresh placement each candidate is priced with: place-refresh's strategy. */
  placement: 'optimal' | 'greedy';
}

/** Candidates run at the scale the approximations were tuned at: precision is not judged per candidate (see compiler/model-parameters.ts). */
const tunedScale: PrecisionCheck = () => ({});

export const selectParametersPass: Pass<FheUnit, SelectParametersOptions> = {
  name: 'select-parameters',
  summary: 'choose ring degree and modulus chain (cost-driven search, or the longest chain a fixed N holds) and annotate them',
  reads: 'fhe',
  writes: 'fhe',
  options: [
    { name: 'fit', type: 'string', help: "'cost': the cost-driven search with refreshes; 'depth': the smallest N whose secure chain holds the whole depth (no refresh)", default: 'cost' },
    { name: 'insecure', type: 'bool', help: 'with fit=depth: allow parameters below 128-bit security', default: false },
    { name: 'costs', type: 'string', help: "cost table pricing the candidates: 'default' or a file from fhec calibrate-costs", default: 'default' },
    { name: 'link', type: 'string', help: 'evaluator-key holder link as RTT_MS/BYTES_PER_MS (default: the table\'s)' },
    { name: 'scale-bits', type: 'int', help: 'log2 of the scale', default: 40 },
    { name: 'integer-bits', type: 'int', help: 'bits above the scale in the first and special primes', default: 20 },
    { name: 'ring-degree', type: 'int', help: 'fix N: the longest chain it holds at 128-bit security (no search)' },
    { name: 'levels', type: 'int', help: 'with ring-degree: exactly this many levels' },
    { name: 'placement', type: 'string', help: "refresh placement each candidate is priced with: 'optimal' (the beam DP, as place-refresh runs it by default) or 'greedy'", default: 'optimal' },
  ],
  run(unit, o) {
    if (unit.program.chain) throw new FhecError('select-parameters needs an unmanaged program (this one already has a chain)');
    const t0 = performance.now();
    const spent = { ...unit.ms };
    if (o.fit !== 'cost' && o.fit !== 'depth') throw new FhecError(`select-parameters: fit must be cost or depth, got '${String(o.fit)}'`);
    if (o.placement !== 'optimal' && o.placement !== 'greedy') throw new FhecError(`select-parameters: placement must be optimal or greedy, got '${String(o.placement)}'`);
    const choice = o.fit === 'depth' ? byDepth(unit, o) : o['ring-degree'] !== undefined ? fixed(unit, o) : search(unit, o);
    const top = topLevel(choice.params);
    const program = { ...choice.program };
    program.attributes = { ...(unit.program.attributes ?? {}) };
    setAttrs(program, {
      ...parameterAttributes(choice.params),
      'mgmt.min_level': choice.floors.lowest,
      'mgmt.refresh_levels': top - choice.floors.lowest,
      'mgmt.input_level': top,
      ...(choice.predictedMs !== undefined ? { 'select.costs': o.costs, 'select.link': o.link, 'select.predicted_ms': choice.predictedMs } : {}),
    });
    unit.program = program;
    unit.floors = choice.floors;
    const own = performance.now() - t0 - (unit.ms.lower - spent.lower) - (unit.ms.place - spent.place);
    return {
      changed: true,
      stats: { ring_degree: choice.params.ringDegree, levels: top, min_level: choice.floors.lowest, ...(unit.search ? { candidates: unit.search.candidates.length, search_ms: Math.round(own) } : {}) },
      notes: [],
      error: { maxAbs: 0, how: 'chooses parameters only; candidates run at the tuned scale' },
    };
  },
};

interface Choice {
  params: CkksParameters;
  program: FheProgram;
  floors: ValueFloors;
  predictedMs?: number;
}

/**
 * The arithmetic rule: the smallest ring degree (at least the program's slots x 2) whose 128-bit
 * budget holds a chain of the program's whole depth; lowered again when the ring had to grow.
 */
function byDepth(unit: FheUnit, o: SelectParametersOptions): Choice {
  let slots = o['ring-degree'] !== undefined ? o['ring-degree'] / 2 : unit.program.slots;
  for (let attempt = 0; attempt < 4; attempt++) {
    const lowered = loweringAt(unit, slots);
    const params = selectParameters({
      depth: multiplicativeDepth(lowered.program),
      scaleBits: o['scale-bits'],
      integerBits: o['integer-bits'],
      minSlots: slots,
      ringDegree: o['ring-degree'],
      insecure: o.insecure,
    });
    if (params.ringDegree / 2 !== slots) {
      slots = params.ringDegree / 2;
      continue;
    }
    unit.lowered = lowered;
    return { params, program: lowered.program, floors: uniformFloors(0) };
  }
  throw new Error('internal: parameter selection does not settle on a ring degree');
}

/** The unit's floors on this chain, never below the chain's lowest compute level (1 above a floor prime). */
function floorOf(unit: FheUnit, lowered: { program: FheProgram }, params: CkksParameters): ValueFloors | { refused: string } {
  const floors = unit.refreshFloor ? unit.refreshFloor(lowered, params) : uniformFloors(1);
  const bottom = lowestComputeLevel(params);
  if ('refused' in floors || bottom === 0) return floors;
  return { floor: (name) => Math.max(bottom, floors.floor(name)), lowest: Math.max(bottom, floors.lowest), highest: Math.max(bottom, floors.highest) };
}

function fixed(unit: FheUnit, o: SelectParametersOptions): Choice {
  const n = o['ring-degree']!;
  const params =
    o.levels !== undefined ? selectParameters({ depth: o.levels, ringDegree: n, scaleBits: o['scale-bits'], integerBits: o['integer-bits'], floorPrime: true }) : longestChain(n, o);
  const lowered = loweringAt(unit, params.ringDegree / 2);
  unit.lowered = lowered;
  const floor = floorOf(unit, lowered, params);
  if ('refused' in floor) throw new FhecError(`N=${params.ringDegree}: ${floor.refused}`, { field: 'ringDegree' });
  if (!placeable(lowered.program, topLevel(params), floor)) {
    const top = topLevel(params);
    throw new FhecError(`N=${params.ringDegree} leaves ${top - floor.highest} to ${top - floor.lowest} levels between refreshes (masks fit from level ${floor.lowest} up), fewer than one op of the model needs`, { field: 'ringDegree' });
  }
  return { params, program: lowered.program, floors: floor };
}

/** Some placement keeps every value at or above its floor on a chain whose top level is `top`. */
function placeable(program: FheProgram, top: number, floors: ValueFloors): boolean {
  if (top - floors.lowest < 1) return false;
  try {
    placeRefreshesGreedy(program, top, floors.floor);
    return true;
  } catch (e) {
    if (e instanceof FhecError) return false;
    throw e;
  }
}

/** The most levels `ringDegree` holds at 128-bit security. */
function longestChain(ringDegree: number, o: SelectParametersOptions): CkksParameters {
  for (let L = 40; L >= 1; L--) {
    try {
      return selectParameters({ depth: L, ringDegree, scaleBits: o['scale-bits'], integerBits: o['integer-bits'], floorPrime: true });
    } catch {
      // fewer levels
    }
  }
  throw new FhecError(`ring degree ${ringDegree} holds no level at ${o['scale-bits']}-bit scale`);
}

/**
 * The search's refresh planner: `placement` ('greedy', or the optimal beam DP of place-refresh with its
 * model beam width), keeping each value at or above its floor on the candidate's chain (`floorsFor`);
 * `spent` is told the ms each placement took.
 */
export function floorPlanner(
  floorsFor: (program: FheProgram, params: CkksParameters) => ValueFloors | { refused: string },
  placement: 'optimal' | 'greedy',
  spent?: (ms: number) => void,
): RefreshPlanner {
  return (program, levels, { params }) => {
    const floor = floorsFor(program, params);
    if ('refused' in floor) return floor;
    if (levels - floor.lowest < 1) return undefined;
    const t = performance.now();
    try {
      const placed = placement === 'greedy' ? placeRefreshesGreedy(program, levels, floor.floor) : placeRefreshes(program, { levels, maxStates: MODEL_MAX_STATES, floor: floor.floor });
      return { refreshes: placed.refreshed.length, program: placed.program, inputLevel: levels };
    } catch (e) {
      // An op that multiplies more levels at once than its floor leaves: this chain is too short for it.
      if (e instanceof FhecError) return undefined;
      throw e;
    } finally {
      spent?.(performance.now() - t);
    }
  };
}

function search(unit: FheUnit, o: SelectParametersOptions): Choice {
  const costs = costTableOf(unit, o.costs, o.link);
  const lowered = new Map<FheProgram, { program: FheProgram }>();
  const chainKey = (p: CkksParameters) => `${p.ringDegree}:${p.bitSizes.join(',')}:${p.scale}`;
  // Floors per chain: the lower bound and the planner both need them.
  const floorsByChain = new Map<string, ValueFloors | { refused: string }>();
  const floorsFor = (program: FheProgram, params: CkksParameters) => {
    const key = chainKey(params);
    if (!floorsByChain.has(key)) floorsByChain.set(key, floorOf(unit, lowered.get(program)!, params));
    return floorsByChain.get(key)!;
  };
  const planner = floorPlanner(floorsFor, o.placement, (ms) => (unit.ms.place += ms));
  const result = searchParameters({
    build: (slots) => {
      const l = loweringAt(unit, slots);
      lowered.set(l.program, l);
      return l.program;
    },
    costs,
    refresh: planner,
    floorPrime: true,
    scaleBits: [o['scale-bits']],
    integerBits: o['integer-bits'],
    precision: tunedScale,
    lowerBound: (program, params) => {
      const floor = floorsFor(program, params);
      return 'refused' in floor ? undefined : latencyLowerBound(program, costs, params.ringDegree, topLevel(params), floor.floor);
    },
  });
  unit.search = result;
  const best = result.best;
  if (!best) {
    const reasons = [...new Set(result.candidates.map((c) => c.reason).filter((r) => r))].slice(0, 3).join('; ');
    throw new FhecError(`no CKKS parameters fit the model within 128-bit security and the key budget (${reasons})`);
  }
  const chosen = unit.lowerings.get(best.params.ringDegree / 2) ?? loweringAt(unit, best.params.ringDegree / 2);
  unit.lowered = chosen;
  const chosenFloors = floorsFor(chosen.program, best.params);
  if ('refused' in chosenFloors) throw new Error('internal: the chosen chain was refused');
  return { params: best.params, program: chosen.program, floors: chosenFloors, predictedMs: best.candidate.latencyMs };
}
