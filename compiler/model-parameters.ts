// CKKS parameters for a canonical model plan: the rules behind the FHE pipeline's select-parameters and
// place-refresh passes (passes/fhe/parameters/select-parameters-pass.ts, passes/fhe/refresh/
// place-refresh-pass.ts) as a model plan uses them. Without a fixed ring degree, the cost-driven search
// (passes/fhe/parameters/parameter-search.ts) lowers the model once per slot count, places refreshes for every
// chain length each ring degree holds at 128-bit security, and keeps the candidate with the lowest
// latency predicted from the cost table (the client-aided refresh round trips included). With a fixed
// ring degree the chain is the longest that degree holds (the rule used before the search).
//
// Chains are [60, 60, s x (L - 1), 60]: the first and special primes as the fixed rule had them (20
// integer bits above the scale), s = 40 unless the caller fixes it, and the floor prime q_1 (ir/ckks/
// params.ts chainBitSizes: nothing computes at level 0, so level 1 holds 120 bits of mask room).
// Precision is not judged per candidate:
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
// one level, before masking), and a value nothing reads (the logits) may go down to the chain's lowest
// compute level (1 above a floor prime, select-parameters); inputs are encrypted at the top. A chain
// where some product cannot sit above its floor is out.

import { isMultiplication, type FheProgram } from '../ir/fhe/types.js';
import type { CostTable } from '../ir/ckks/cost-table.js';
import { topLevel, type CkksParameters } from '../ir/ckks/params.js';
import type { LoweredModel } from '../passes/fhe/lower-canonical/lower-model.js';
import type { Candidate, ParameterSearchResult } from '../passes/fhe/parameters/parameter-search.js';
import { predictProgramLatency } from '../passes/fhe/parameters/program-latency.js';
import { runFhePipeline } from '../passes/fhe/pipeline/run.js';
import { numberAttr, requireParameters, uniformFloors, unitOf, withoutAttributes, type RefreshFloor, type ValueFloors } from '../passes/fhe/pipeline/unit.js';
import { coefficientBound, DEFAULT_HIDING_BITS, minRefreshLevel, modulusBitsAt } from '../runtime/refresh/mask.js';

export type Placement = 'optimal' | 'greedy';

/** The scale the approximations and weights were tuned at. */
const MODEL_SCALE_BITS = 40;
/** Bits above the scale in the first prime (and the special prime): the fixed rule's 60-bit primes. */
export const MODEL_INTEGER_BITS = 20;

/**
 * What the masks need of a lowered model before placement (a value's bound does not depend on where it
 * is refreshed): a bound on |x| of each ciphertext value, and the values carried to the next step (the
 * KV-cache outputs, masked one level below where they sit).
 */
export interface MaskNeeds {
  bounds: ReadonlyMap<string, number>;
  carried: ReadonlySet<string>;
}

function maskRefusal(params: CkksParameters, bound: number, carried: boolean): string {
  const need = Math.log2(Number(coefficientBound(params.scale, bound))) + DEFAULT_HIDING_BITS + Math.log2(params.ringDegree) + 2;
  const top = topLevel(params);
  return (
    `${DEFAULT_HIDING_BITS}-bit refresh masks for bound ${bound.toPrecision(3)} need ${need.toFixed(0)} bits at the refresh level` +
    `${carried ? ' (one level above it for the cache carries)' : ''}; this chain has ${modulusBitsAt(params, top - 1).toFixed(0)} bits below the top`
  );
}

/** What modelFloors reads of a program and its mask needs, once per program (a search asks for many chains). */
interface FloorInputs {
  /** Values that may need a floor, by name, indexing the arrays below. */
  index: Map<string, number>;
  names: string[];
  bound: Float64Array;
  carried: Uint8Array;
  /** Products: they sit at most at top - 1. */
  product: Uint8Array;
  /** Read by some op (may be refreshed); otherwise only carried. */
  read: Uint8Array;
}

function floorInputs(program: FheProgram, needs: MaskNeeds): FloorInputs {
  const readBy = new Set<string>();
  for (const op of program.ops) if (op.kind !== 'output') for (const a of op.args) readBy.add(a.name);
  const picked: { name: string; bound: number; carried: boolean; product: boolean; read: boolean }[] = [];
  for (const op of program.ops) {
    const v = op.result;
    if (!v || v.type.kind !== 'ct') continue;
    const carried = needs.carried.has(v.name);
    const read = readBy.has(v.name);
    if (!carried && !read) continue;
    const bound = needs.bounds.get(v.name);
    if (bound === undefined) throw new Error(`internal: no mask bound for %${v.name}`);
    picked.push({ name: v.name, bound, carried, product: isMultiplication(op.kind), read });
  }
  return {
    index: new Map(picked.map((p, i) => [p.name, i])),
    names: picked.map((p) => p.name),
    bound: Float64Array.from(picked, (p) => p.bound),
    carried: Uint8Array.from(picked, (p) => (p.carried ? 1 : 0)),
    product: Uint8Array.from(picked, (p) => (p.product ? 1 : 0)),
    read: Uint8Array.from(picked, (p) => (p.read ? 1 : 0)),
  };
}

/**
 * The lowest level each value of an unmanaged model program may sit at: r(B) for a value something
 * reads (it may be refreshed: the lowest level whose modulus fits a 40-bit mask for its bound B), r(B)
 * + 1 for a carried KV-cache output (its slot move takes a level before the mask), 0 for the rest (the
 * logits). A refusal when a product (or a carried value) cannot sit at or above its floor on this chain.
 */
export function modelFloors(program: FheProgram, params: CkksParameters, needs: MaskNeeds): ValueFloors | { refused: string } {
  return floorsOn(floorInputs(program, needs), params);
}

function floorsOn(inputs: FloorInputs, params: CkksParameters): ValueFloors | { refused: string } {
  const top = topLevel(params);
  const byBound = new Map<number, number>();
  const refreshLevel = (b: number): number => {
    if (!byBound.has(b)) byBound.set(b, minRefreshLevel(params, params.scale, b, DEFAULT_HIDING_BITS));
    return byBound.get(b)!;
  };
  const floors = new Uint8Array(inputs.names.length);
  let lowest = Infinity;
  let highest = 0;
  for (let i = 0; i < floors.length; i++) {
    const bound = inputs.bound[i]!;
    const carried = inputs.carried[i] === 1;
    const r = refreshLevel(bound);
    // A product sits at most at top - 1; an input, rotation or sum of inputs may sit at the top.
    const product = inputs.product[i] === 1;
    const highestPossible = product ? top - 1 : top;
    const f = r < 0 ? Infinity : r + (carried ? 1 : 0);
    if (f > highestPossible && (carried || product)) return { refused: maskRefusal(params, bound, carried) };
    const floor = Math.min(f, top);
    floors[i] = floor;
    if (inputs.read[i] === 1) {
      lowest = Math.min(lowest, floor);
      highest = Math.max(highest, floor);
    }
  }
  const floor = (name: string): number => {
    const i = inputs.index.get(name);
    return i === undefined ? 0 : floors[i]!;
  };
  return { floor, lowest: lowest === Infinity ? 0 : lowest, highest };
}

/** The unit's refresh floor rule for model plans: each value where a 40-bit mask fits its own bound (modelFloors). */
export function modelRefreshFloor<T extends { program: FheProgram }>(maskNeeds: (lowered: T) => MaskNeeds): RefreshFloor {
  const inputs = new Map<FheProgram, FloorInputs>();
  return (lowered, params) => {
    if (!inputs.has(lowered.program)) inputs.set(lowered.program, floorInputs(lowered.program, maskNeeds(lowered as T)));
    return floorsOn(inputs.get(lowered.program)!, params);
  };
}

export interface ModelParameterOptions<T = LoweredModel> {
  costs: CostTable;
  /** What the refresh and carry masks need of a lowered model (per-value floors); default: floor 1 for all. */
  maskNeeds?: (lowered: T) => MaskNeeds;
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
  /** The lowest level each value may sit at (modelFloors). */
  floors: ValueFloors;
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
    ...(options.maskNeeds ? { refreshFloor: modelRefreshFloor(options.maskNeeds) } : {}),
  });
  unit.costTables.set(GIVEN_COSTS, options.costs);
  const scale = options.scaleBits !== undefined ? `,scale-bits=${options.scaleBits}` : '';
  const placement = options.placement ?? 'optimal';
  const runs = runFhePipeline(unit, `select-parameters{costs=${GIVEN_COSTS}${scale},placement=${placement}},place-refresh{strategy=${placement}},manage-scales`);
  const best = unit.search?.best;
  if (!best || !unit.lowered || !unit.placed) throw new Error('internal: the parameter pipeline chose nothing');
  const managed = withoutAttributes(unit.program);
  const refreshes = numberAttr(unit.program, 'mgmt.refreshes', 'search')!;
  const greedyRefreshes = numberAttr(unit.program, 'mgmt.greedy_refreshes', 'search')!;
  const params = requireParameters(unit.program, 'search');
  // The candidate was priced with the placement place-refresh makes; re-priced if it placed otherwise.
  const candidate = refreshes !== best.candidate.refreshes ? { ...best.candidate, latencyMs: predictProgramLatency(managed, params, options.costs).ms, refreshes } : best.candidate;
  const selectMs = runs.find((r) => r.pass === 'select-parameters')!.ms;
  return {
    params,
    lowered: unit.lowered,
    placed: withoutAttributes(unit.placed),
    managed,
    refreshes,
    greedyRefreshes,
    floors: unit.floors ?? uniformFloors(1),
    candidate,
    search: unit.search!,
    ms: { lower: unit.ms.lower, place: unit.ms.place, search: selectMs + runs.filter((r) => r.pass !== 'select-parameters').reduce((a, r) => a + r.ms, 0) - unit.ms.lower - unit.ms.place },
  };
}
