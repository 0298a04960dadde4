// What the FHE passes run on: the current program, plus what a driver may attach that text cannot
// carry (the canonical model lower-canonical lowers, a cost-table object, the refresh floor rule).
// Everything a later pass needs from an earlier one is also written into the program's attributes
// (`attr ckks.scale = ...`, `attr mgmt.refresh_levels = 9`), so a pass runs alone on annotated text.

import { FhecError } from '../../../ir/errors.js';
import type { FheAttribute, FheProgram } from '../../../ir/fhe/types.js';
import { makeParameters, type CkksParameters } from '../../../ir/ckks/params.js';
import { defaultCostTable, loadCostTable, parseLink, withLink, type CostTable } from '../../../ir/ckks/cost-table.js';
import type { ParameterSearchResult } from '../parameters/parameter-search.js';

/** Lowers the model for a slot count (the packing depends on N): what lower-canonical and select-parameters call. */
export interface FheSource<T extends { program: FheProgram } = { program: FheProgram }> {
  /** Which lowering pass reads it: a canonical transformer model, or an arithmetic ONNX graph. */
  kind: 'canonical' | 'graph';
  /** What is lowered, for messages (e.g. the model file). */
  name: string;
  lower(slots: number): T;
  /** Slot count lower-canonical lowers at when its `slots` option is not given. */
  defaultSlots: number;
}

/** The lowest level each value may sit at on a chain (a refresh mask needs room for the value's own bound). */
export interface ValueFloors {
  /** Lowest level of each value, by name. */
  floor: (name: string) => number;
  /** The lowest and highest floor of a value something reads (one that may be refreshed). */
  lowest: number;
  highest: number;
}

/** One floor for every value. */
export function uniformFloors(level: number): ValueFloors {
  return { floor: () => level, lowest: level, highest: level };
}

/** The floors refreshes keep each value of a lowering at on a chain, or why the chain is out (see select-parameters). */
export type RefreshFloor = (lowered: { program: FheProgram }, params: CkksParameters) => ValueFloors | { refused: string };

export interface FheUnit<T extends { program: FheProgram } = { program: FheProgram }> {
  program: FheProgram;
  /** Absent for textual IR: lower-canonical needs it, select-parameters then searches every ring degree. */
  source?: FheSource<T>;
  /** Lowerings by slot count (lower-canonical and select-parameters share them). */
  lowerings: Map<number, T>;
  /** The lowering the program came from. */
  lowered?: T;
  /** The refresh-placed, unmanaged program (set by place-refresh). */
  placed?: FheProgram;
  /** Default: every value stays at level >= 1. */
  refreshFloor?: RefreshFloor;
  /** The floors select-parameters chose the chain with (place-refresh keeps to them). */
  floors?: ValueFloors;
  /** Cost tables by the name select-parameters' `costs` option gives ('default' or a file). */
  costTables: Map<string, CostTable>;
  /** The candidates select-parameters priced. */
  search?: ParameterSearchResult;
  /** Milliseconds spent in lowering and refresh placement (including select-parameters' own). */
  ms: { lower: number; place: number };
}

export function unitOf<T extends { program: FheProgram }>(program: FheProgram, extra: Partial<FheUnit<T>> = {}): FheUnit<T> {
  return { program, lowerings: new Map(), costTables: new Map(), ms: { lower: 0, place: 0 }, ...extra };
}

export function attr(p: FheProgram, key: string): FheAttribute | undefined {
  return p.attributes?.[key];
}

export function setAttrs(p: FheProgram, values: Record<string, FheAttribute | undefined>): void {
  const a = { ...(p.attributes ?? {}) };
  for (const [k, v] of Object.entries(values)) if (v !== undefined) a[k] = v;
  p.attributes = a;
}

export function numberAttr(p: FheProgram, key: string, pass: string): number | undefined {
  const v = attr(p, key);
  if (v === undefined) return undefined;
  if (typeof v !== 'number') throw new FhecError(`${pass}: attribute ${key} must be a number, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * The lowering for a slot count: the unit's cache, else its source (timed into unit.ms.lower), else
 * (textual IR) the program itself when it is packed for those slots.
 */
export function loweringAt<T extends { program: FheProgram }>(unit: FheUnit<T>, slots: number): T | { program: FheProgram } {
  const cached = unit.lowerings.get(slots);
  if (cached) return cached;
  if (!unit.source) {
    if (slots !== unit.program.slots) throw new FhecError(`the program is packed for ${unit.program.slots} slots, not ${slots}`);
    return { program: withoutAttributes(unit.program) };
  }
  const t = performance.now();
  const l = unit.source.lower(slots);
  unit.ms.lower += performance.now() - t;
  unit.lowerings.set(slots, l);
  return l;
}

/** A lowering pass's work: the source's lowering at `slots` becomes the unit's (annotated) program. */
export function lowerSource<T extends { program: FheProgram }>(unit: FheUnit<T>, kind: FheSource['kind'], pass: string, slots?: number): T {
  if (!unit.source) throw new FhecError(`${pass} needs ${kind === 'canonical' ? 'a canonical model (fhec compile MODEL --calibration FILE)' : 'an ONNX graph (fhec compile MODEL)'}; textual FHE IR is already lowered`);
  if (unit.source.kind !== kind) throw new FhecError(`${pass} lowers ${kind === 'canonical' ? 'canonical models' : 'arithmetic graphs'}; this unit holds a ${unit.source.kind === 'canonical' ? 'canonical model (use lower-canonical)' : 'graph (use lower-graph)'}`);
  const lowered = loweringAt(unit, slots ?? unit.source.defaultSlots) as T;
  unit.lowered = lowered;
  // The lowering's own program stays unannotated (plans store it): the unit gets a copy.
  unit.program = { ...lowered.program };
  return lowered;
}

/** The program without its annotations (what plans store: the runtime needs no analysis results). */
export function withoutAttributes(p: FheProgram): FheProgram {
  const { attributes: _drop, ...rest } = p;
  return rest;
}

/** The CKKS parameter annotations select-parameters writes. */
export function parameterAttributes(params: CkksParameters): Record<string, FheAttribute> {
  return {
    'ckks.ring_degree': params.ringDegree,
    'ckks.bit_sizes': params.bitSizes.join(','),
    'ckks.scale': params.scale,
    ...(params.insecure ? { 'ckks.insecure': 1 } : {}),
  };
}

/** The parameters a program is annotated with (select-parameters' output), or undefined. */
export function annotatedParameters(p: FheProgram, pass: string): CkksParameters | undefined {
  const n = numberAttr(p, 'ckks.ring_degree', pass);
  const bits = attr(p, 'ckks.bit_sizes');
  if (n === undefined || bits === undefined) return undefined;
  const bitSizes = String(bits).split(',').map(Number);
  if (bitSizes.some((b) => !Number.isInteger(b))) throw new FhecError(`${pass}: attribute ckks.bit_sizes must be integers separated by commas, got ${JSON.stringify(bits)}`);
  const params = makeParameters({ ringDegree: n, bitSizes, scale: numberAttr(p, 'ckks.scale', pass), insecure: attr(p, 'ckks.insecure') === 1 || undefined });
  if (p.chain && p.chain.primes.some((q, i) => q !== params.primes[i])) {
    throw new FhecError(`${pass}: the program's chain does not match its ckks.* annotations`);
  }
  return params;
}

/** Parameters from the annotations; a clear error naming what is missing. */
export function requireParameters(p: FheProgram, pass: string): CkksParameters {
  const params = annotatedParameters(p, pass);
  if (!params) {
    throw new FhecError(`${pass} needs CKKS parameters: run select-parameters first, or annotate the program with attr ckks.ring_degree, ckks.bit_sizes and ckks.scale`);
  }
  return params;
}

/**
 * A cost table by name: 'default' (the shipped one) or a file written by `fhec calibrate-costs`; with
 * `link` ('RTT_MS/BYTES_PER_MS', e.g. '20/12500'), its evaluator-key holder link replaced.
 */
export function costTableOf(unit: FheUnit<any>, name: string, link?: string): CostTable {
  const key = link === undefined ? name : `${name}|${link}`;
  let t = unit.costTables.get(key);
  if (!t) {
    t = unit.costTables.get(name) ?? (name === 'default' ? defaultCostTable() : loadCostTable(name));
    unit.costTables.set(name, t);
    if (link !== undefined) t = withLink(t, parseLink(link));
    unit.costTables.set(key, t);
  }
  return t;
}
