// Cost-driven parameter search: chooses the ring degree N, the modulus chain (levels and scale bits)
// and the refresh budget together, minimising the latency predicted from a measured cost table
// (passes/fhe/predict-latency.ts), subject to 128-bit security (ir/ckks/security.ts), the
// precision each output needs (passes/fhe/precision.ts, or a check the caller gives instead) and the
// Galois-key memory budget.
//
// Every candidate is (N, scale bits s, levels L, special prime) with the chain
// [s + integer bits, s x L, special] (with `floorPrime`, for planners that refresh, the second prime
// is the floor prime: ir/ckks/params.ts chainBitSizes); the special prime is as large as the first prime, or 60 bits
// (key-switching noise falls with the special prime, at the price of security budget):
// the refresh planner decides how the program fits L levels (and how many refreshes that costs), the
// scale management pass types it, the precision pass checks it, and the cost table prices it. The
// planner is a parameter so the refresh placement pass can plug in; the default places none and is
// infeasible when the program is deeper than L. Once a (N, s) reaches zero refreshes, more levels only
// add primes (same op levels, bigger keys), so longer chains are skipped as dominated.

import { FhecError } from '../../../ir/errors.js';
import type { FheChain, FheProgram } from '../../../ir/fhe/types.js';
import { hasRingDegree, type CostTable } from '../../../ir/ckks/cost-table.js';
import { chainBitSizes, fheChain, keySwitchKeyBytes, makeParameters, topLevel, totalModulusBits, type CkksParameters } from '../../../ir/ckks/params.js';
import { evaluatePlain, maxAbs } from '../../../ir/fhe/plain-eval.js';
import { DEFAULT_KEY_BUDGET_BYTES, normalizeStep, planRotationKeys } from '../../../ir/ckks/rotation-keys.js';
import { isSecure128, maxModulusBits, RING_DEGREES } from '../../../ir/ckks/security.js';
import { multiplicativeDepth } from '../analysis/depth.js';
import { manageScales } from '../manage/manage-scales.js';
import { refreshProductsRule } from '../manage/refresh-products.js';
import { analyzePrecision, magnitudeBoundsFromPlain, type PrecisionRequirement } from '../analysis/precision.js';
import { predictLatency } from '../analysis/predict-latency.js';

export interface RefreshContext {
  params: CkksParameters;
  chain: FheChain;
  topScale: number;
}

export interface RefreshPlan {
  refreshes: number;
  /**
   * The program to run: unmanaged (the search manages it for the chain) or already managed. Refreshes
   * that are ops in it are priced from their levels; otherwise `refreshes` round trips are priced
   * from level 0 to the top.
   */
  program: FheProgram;
  /** Level an unmanaged program's inputs are encrypted at (default: scale management's, the program's depth). */
  inputLevel?: number;
}

/** A chain the planner rules out for a reason of its own (not depth): the candidate is out, with the reason. */
export interface RefreshRefusal {
  refused: string;
}

/** How a program fits `levels` levels; undefined when it cannot (too shallow), a refusal when it must not. */
export type RefreshPlanner = (program: FheProgram, levels: number, context: RefreshContext) => RefreshPlan | RefreshRefusal | undefined;

/** What a replacement precision check says of a candidate: the output bits it expects, or why it fails. */
export interface PrecisionVerdict {
  outputBits?: number;
  reason?: string;
}

/** A precision check in place of the analysis (see ParameterSearchOptions.precision). */
export type PrecisionCheck = (program: FheProgram, params: CkksParameters) => PrecisionVerdict;

/** The default planner: no refresh; fits only when the program's depth is at most `levels`. */
const noRefresh: RefreshPlanner = (program, levels) => (multiplicativeDepth(program) <= levels ? { refreshes: 0, program } : undefined);

export interface ParameterSearchOptions {
  /** The unmanaged program for a slot count (its packing depends on N). */
  build: (slots: number) => FheProgram;
  costs: CostTable;
  /** What the outputs need (see PrecisionOptions.required). */
  required?: PrecisionRequirement | Record<string, PrecisionRequirement>;
  /** max |x| per input tensor. */
  inputBounds?: Record<string, number>;
  /** Inputs (row-major per tensor) whose float64 run gives per-value magnitude bounds. */
  calibrationInputs?: Record<string, ArrayLike<number>>;
  /** Margin on calibrated magnitudes; default 0.25. */
  boundMargin?: number;
  /** Default: those the cost table has. */
  ringDegrees?: number[];
  /** Default: 25, 30, 35, 40, 45, 50. */
  scaleBits?: number[];
  /** Bits above the scale in the first prime; default: from the calibrated magnitudes (+2), else 20. */
  integerBits?: number;
  refresh?: RefreshPlanner;
  /** Chains with a floor prime (the planner refreshes and keeps every value at level 1 or above). */
  floorPrime?: boolean;
  /** Most refreshes allowed per run; default unlimited. */
  maxRefreshes?: number;
  /** Galois key memory budget (bytes); default 3 GiB (ir/ckks/rotation-keys.ts). */
  keyBudgetBytes?: number;
  /**
   * How a candidate's precision is judged: by the precision analysis (passes/fhe/precision.ts, the
   * default), or by a check the caller gives instead. The analysis tracks thousands of noise terms per
   * value; on a whole model (tens of thousands of ops) it runs out of memory, and folding the terms
   * makes its bounds diverge, so model compilation judges precision its own way.
   */
  precision?: 'analyze' | PrecisionCheck;
  /**
   * A lower bound on what a candidate's latency can be (ms), before its refreshes are placed
   * (latency-lower-bound.ts); undefined when it has none. A candidate whose bound exceeds the best
   * latency found so far is skipped (listed as pruned): it cannot be chosen.
   */
  lowerBound?: (program: FheProgram, params: CkksParameters) => number | undefined;
}

export interface Candidate {
  ringDegree: number;
  scaleBits: number;
  levels: number;
  bitSizes: number[];
  modulusBits: number;
  securityLimit: number;
  refreshes?: number;
  /** Refresh rounds (messages to the key holder) and the bytes they carry, both ways. */
  rounds?: number;
  refreshBytes?: number;
  /** Fewest bits of precision any output keeps (predicted). */
  outputBits?: number;
  /** Bytes of the Galois and relinearization keys. */
  keyBytes?: number;
  latencyMs?: number;
  /** A lower bound on latencyMs that ruled the candidate out before pricing (see ParameterSearchOptions.lowerBound). */
  lowerBoundMs?: number;
  feasible: boolean;
  /** Why not, when infeasible; what was skipped for a summary row. */
  reason?: string;
}

export interface ParameterChoice {
  params: CkksParameters;
  program: FheProgram;
  candidate: Candidate;
}

export interface ParameterSearchResult {
  best?: ParameterChoice;
  candidates: Candidate[];
}

function maxLevels(n: number, first: number, special: number, s: number): number {
  const limit = maxModulusBits(n) ?? 0;
  return Math.max(0, Math.floor((limit - first - special) / s));
}

export function searchParameters(options: ParameterSearchOptions): ParameterSearchResult {
  const planner = options.refresh ?? noRefresh;
  const ringDegrees = (options.ringDegrees ?? options.costs.ringDegrees.map((r) => r.ringDegree)).filter((n) =>
    (RING_DEGREES as readonly number[]).includes(n),
  );
  const scaleBitsList = options.scaleBits ?? [25, 30, 35, 40, 45, 50];
  const margin = options.boundMargin ?? 0.25;
  const candidates: Candidate[] = [];
  let best: ParameterChoice | undefined;
  const programs = new Map<number, FheProgram | Error>();
  const programFor = (slots: number) => {
    if (!programs.has(slots)) {
      try {
        programs.set(slots, options.build(slots));
      } catch (e) {
        if (!(e instanceof FhecError)) throw e;
        programs.set(slots, e);
      }
    }
    return programs.get(slots)!;
  };
  let integerBits = options.integerBits;
  for (const n of [...ringDegrees].sort((a, b) => a - b)) {
    const base = { ringDegree: n, bitSizes: [] as number[], modulusBits: 0, securityLimit: maxModulusBits(n) ?? 0 };
    if (!hasRingDegree(options.costs, n)) {
      candidates.push({ ...base, scaleBits: 0, levels: 0, feasible: false, reason: 'no timings in the cost table' });
      continue;
    }
    const program = programFor(n / 2);
    if (program instanceof Error) {
      candidates.push({ ...base, scaleBits: 0, levels: 0, feasible: false, reason: `does not fit: ${program.message}` });
      continue;
    }
    if (integerBits === undefined) {
      if (options.calibrationInputs) {
        const run = evaluatePlain(program, options.calibrationInputs);
        let m = 0;
        for (const v of run.values.values()) m = Math.max(m, maxAbs(v));
        integerBits = Math.min(30, Math.max(4, Math.ceil(Math.log2(m * (1 + margin) + 1)) + 2));
      } else integerBits = 20;
    }
    const depth = multiplicativeDepth(program);
    for (const [s, special] of scaleBitsList.flatMap((s) => {
      const first = Math.min(60, s + integerBits!);
      return [...new Set([Math.max(first, s), 60])].map((sp) => [s, sp] as const);
    })) {
      const first = Math.min(60, s + integerBits);
      const top = maxLevels(n, first, special, s);
      if (top < 1) {
        candidates.push({ ...base, scaleBits: s, levels: 0, feasible: false, reason: `not even one level within ${base.securityLimit} bits` });
        continue;
      }
      let skippedShallow = 0;
      // One row for the chain lengths below `c`'s that the planner could not fit.
      const flushShallow = (c: Candidate) => {
        if (skippedShallow === 0) return;
        candidates.push({ ...c, levels: c.levels - 1, reason: `levels 1..${c.levels - 1}: the planner cannot fit depth ${depth}`, bitSizes: [], modulusBits: 0 });
        skippedShallow = 0;
      };
      for (let levels = 1; levels <= top; levels++) {
        const bitSizes = chainBitSizes(first, s, levels, special, options.floorPrime ? { ringDegree: n } : undefined);
        const modulusBits = totalModulusBits({ bitSizes });
        const c: Candidate = { ...base, scaleBits: s, levels, bitSizes, modulusBits, feasible: false };
        if (!isSecure128(n, modulusBits)) {
          candidates.push({ ...c, reason: `${modulusBits} bits break 128-bit security` });
          break;
        }
        let params: CkksParameters;
        try {
          params = makeParameters({ ringDegree: n, bitSizes, scale: 2 ** s });
        } catch (e) {
          if (!(e instanceof FhecError)) throw e;
          candidates.push({ ...c, reason: e.message });
          continue;
        }
        const chain = fheChain(params);
        const bestMs = best?.candidate.latencyMs;
        const bound = bestMs !== undefined ? options.lowerBound?.(program, params) : undefined;
        if (bound !== undefined && bound > bestMs!) {
          flushShallow(c);
          candidates.push({ ...c, lowerBoundMs: bound, reason: `pruned: at least ${bound.toFixed(2)} ms before any refresh, above the best ${bestMs!.toFixed(2)} ms` });
          continue;
        }
        const plan = planner(program, levels, { params, chain, topScale: params.scale });
        if (!plan) {
          skippedShallow++;
          continue;
        }
        if ('refused' in plan) {
          candidates.push({ ...c, reason: plan.refused });
          continue;
        }
        flushShallow(c);
        c.refreshes = plan.refreshes;
        evaluate(c, params, chain, plan);
        candidates.push(c);
        if (plan.refreshes === 0) {
          if (levels < top) candidates.push({ ...base, scaleBits: s, levels: levels + 1, feasible: false, reason: `levels ${levels + 1}..${top}: dominated (no refresh needed at ${levels})` });
          break;
        }
      }
      if (skippedShallow > 0) candidates.push({ ...base, scaleBits: s, levels: top, feasible: false, reason: `levels 1..${top}: the planner cannot fit depth ${depth}` });
    }
  }
  return { best, candidates };

  function evaluate(c: Candidate, params: CkksParameters, chain: FheChain, plan: RefreshPlan): void {
    if (options.maxRefreshes !== undefined && plan.refreshes > options.maxRefreshes) {
      c.reason = `${plan.refreshes} refreshes exceed the budget of ${options.maxRefreshes}`;
      return;
    }
    let managed: FheProgram;
    try {
      managed = plan.program.chain
        ? plan.program
        : manageScales(plan.program, { chain, topScale: params.scale, inputLevel: plan.inputLevel, refreshProducts: refreshProductsRule(options.costs, params.ringDegree, topLevel(params)) });
    } catch (e) {
      if (!(e instanceof FhecError)) throw e;
      c.reason = e.message;
      return;
    }
    let keys: ProgramKeys;
    try {
      keys = programKeys(managed, params, options.keyBudgetBytes);
    } catch (e) {
      if (!(e instanceof FhecError)) throw e;
      c.reason = e.message;
      return;
    }
    c.keyBytes = keys.keyBytes;
    const { rotationKeySteps } = keys;
    const verdict =
      options.precision && options.precision !== 'analyze' ? options.precision(managed, params) : analyze(managed, params, rotationKeySteps);
    if (verdict.outputBits !== undefined) c.outputBits = verdict.outputBits;
    if (verdict.reason !== undefined) {
      c.reason = verdict.reason;
      return;
    }
    const hasRefreshOps = managed.ops.some((op) => op.kind === 'refresh');
    const latency = predictLatency(managed, options.costs, { rotationKeySteps, extraRefreshes: hasRefreshOps ? 0 : plan.refreshes });
    c.latencyMs = latency.totalMs;
    c.rounds = latency.refreshRounds;
    c.refreshBytes = latency.refreshBytes;
    c.feasible = true;
    // Ties (the table prices by level, so scales that give the same levels cost the same): the
    // smaller N, then the more precise.
    const o = best?.candidate;
    const better =
      !o ||
      c.latencyMs < o.latencyMs! ||
      (c.latencyMs === o.latencyMs && (c.ringDegree < o.ringDegree || (c.ringDegree === o.ringDegree && c.outputBits! > o.outputBits!)));
    if (better) best = { params, program: managed, candidate: c };
  }

  function analyze(managed: FheProgram, params: CkksParameters, rotationKeySteps: (step: number) => number[]): PrecisionVerdict {
    const precision = analyzePrecision(managed, {
      params,
      required: options.required,
      inputBounds: options.inputBounds,
      valueBounds: options.calibrationInputs ? magnitudeBoundsFromPlain(managed, options.calibrationInputs, margin) : undefined,
      rotationKeySteps,
    });
    const outputBits = Math.min(...precision.outputs.map((o) => o.value.bits));
    if (precision.overflows.length > 0) {
      const o = precision.overflows[0]!;
      return { outputBits, reason: `%${o.value} overflows the modulus at level ${o.level}` };
    }
    if (precision.shortfalls.length > 0) {
      const o = precision.shortfalls[0]!;
      return { outputBits, reason: `output ${o.tensor} keeps ${o.value.bits.toFixed(1)} bits (error ${o.value.error.toExponential(1)})` };
    }
    return { outputBits };
  }
}

export interface ProgramKeys {
  /** Bytes of the Galois keys and (if the program relinearizes) the relinearization key. */
  keyBytes: number;
  /** The Galois key steps one rotation applies (several when composed from power-of-two keys). */
  rotationKeySteps: (step: number) => number[];
}

/** The keys a managed program needs within the key budget (throws when even composed keys exceed it). */
export function programKeys(managed: FheProgram, params: CkksParameters, keyBudgetBytes = DEFAULT_KEY_BUDGET_BYTES): ProgramKeys {
  const steps = new Set<number>();
  let relin = false;
  for (const op of managed.ops) {
    if (op.kind === 'rotate') steps.add(op.step!);
    if (op.kind === 'relinearize') relin = true;
  }
  const keys = planRotationKeys(params, steps, keyBudgetBytes);
  const slots = params.ringDegree / 2;
  return {
    keyBytes: keys.galoisBytes + (relin ? keySwitchKeyBytes(params) : 0),
    rotationKeySteps: (step) => keys.compose.get(normalizeStep(step, slots)) ?? [step],
  };
}

/** The candidates as a table; the chosen one is marked with *. */
export function formatCandidates(result: ParameterSearchResult): string {
  const lines = [
    '|   | N | scale bits | levels | chain (bits / tc128 limit) | refreshes | rounds | refresh MiB | output bits | keys MiB | predicted ms | status |',
    '|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|',
  ];
  const f = (x: number | undefined, d = 1) => (x === undefined || !Number.isFinite(x) ? '' : x.toFixed(d));
  for (const c of result.candidates) {
    const chosen = result.best?.candidate === c ? '*' : '';
    const chain = c.bitSizes.length ? `[${c.bitSizes.join(', ')}] (${c.modulusBits} / ${c.securityLimit})` : '';
    lines.push(
      `| ${chosen} | ${c.ringDegree} | ${c.scaleBits || ''} | ${c.levels || ''} | ${chain} | ${c.refreshes ?? ''} | ${c.rounds ?? ''} | ` +
        `${c.refreshBytes === undefined ? '' : (c.refreshBytes / 2 ** 20).toFixed(1)} | ${f(c.outputBits)} | ` +
        `${c.keyBytes === undefined ? '' : (c.keyBytes / 2 ** 20).toFixed(0)} | ${f(c.latencyMs, 2)} | ${c.feasible ? 'ok' : c.reason ?? ''} |`,
    );
  }
  if (!result.best) lines.push('no candidate is feasible');
  return lines.join('\n');
}
