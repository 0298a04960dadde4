// Bounds on |x| at the points where a ciphertext leaves the evaluator masked (refresh ops, and the
// KV-cache outputs a generation carries into the next step): the mask is sized from them, so a value
// past its bound is hidden less than the README says. Two sources, per value:
// - proved: interval arithmetic on magnitudes, slot by slot, over the refresh-placed program from
//   bounds on its inputs (|a + b| <= |a| + |b|, |a b| <= |a| |b| per slot, rotations move the slots'
//   bounds, rescales and refreshes keep them: a mask then a rotate-and-sum stays exact), seeded at every approximation's output with the largest
//   |p| over its fitted interval (approximationOutputBound), plus a slack for the CKKS error the
//   ideal values do not have. Without the seeds it explodes through polynomial evaluations; with them,
//   what is computed from an approximation's output (a row sum of exp, a normalized row, the sum of
//   its squares) gets a bound that holds for any data, as long as each approximation's input stays in
//   its interval (the run-time range monitor checks the slots that carry data; the lowering fills the
//   others with values inside the interval, and the chosen bound is never below the calibrated one,
//   which covers every slot);
// - calibrated: the largest |x| over every slot on the calibration windows (a float64 run of the
//   managed program, ir/fhe/plain-eval.ts), times 1 + margin.
// The choice (chooseBounds): when the proved bound is finite and no larger than the largest calibrated
// bound among the plan's points (so it raises no refresh level: the lowest level is set by the largest
// bound, compiler/model-parameters.ts), the bound is max(calibrated, proved): source 'proved' when the
// proof is the larger (held-out data can go past the calibrated max there, e.g. a peaked softmax row
// whose sum of squares nears 1 where calibration rows were flat, 1/n), 'both' when the calibrated one
// already covers the proof. Otherwise the calibrated one ('calibrated'). Which one, and both figures,
// go into the plan.

import { FhecError } from '../../../ir/errors.js';
import { evaluatePlainRuns, maxAbs, rotateSlots } from '../../../ir/fhe/plain-eval.js';
import type { FheOp, FheProgram } from '../../../ir/fhe/types.js';
import { constantSlots, packSlots } from '../../../ir/fhe/layout.js';
import type { Approximation } from '../../approx/approximation.js';

/**
 * Calibration margin of a mask bound: 16 times the calibrated max (4 bits). Measured on model A with
 * held-out text (eval-dev.txt: 12 prefill windows, and generations from held-out prompts), the largest
 * |x| at a refresh point reached 8.1 times its calibrated max (a Chebyshev basis value of 1/sum-exp,
 * whose input had left its fitted interval); 16 leaves a factor of 2 above that. The bits cost modulus
 * headroom above the mask and nothing else (with a coefficient-domain mask); a value past its bound is
 * what the key holder's overflow check exists for.
 */
export const REFRESH_BOUND_MARGIN = 15;

/**
 * Calibration windows the bounds are measured on, at most (evenly spread over the calibration set): a
 * float64 run of a whole model costs ~0.3 s per window on model A, and a generation compiles a plan
 * per step. The margin covers what the other windows (and unseen text) add.
 */
const BOUND_CALIBRATION_WINDOWS = 48;

/** At most `k` of the items, evenly spread (first and last included). */
export function spreadSample<T>(items: readonly T[], k = BOUND_CALIBRATION_WINDOWS): T[] {
  if (items.length <= k) return [...items];
  return Array.from({ length: k }, (_, i) => items[Math.round((i * (items.length - 1)) / (k - 1))]!);
}

/** Covers the CKKS error on top of the ideal values (far below 2^-10 absolute at scale 2^30 and above). */
const CKKS_ERROR_SLACK = 2 ** -10;

export type BoundSource = 'proved' | 'both' | 'calibrated';

export interface ValueBound {
  value: string;
  bound: number;
  source: BoundSource;
  /** Largest |x| on the calibration windows. */
  calibratedMax: number;
  /** The interval-arithmetic bound, when finite. */
  proved?: number;
}

/**
 * Relative slack on a sampled max |p|: a polynomial of degree d is at most 1/cos(pi d / 2n) times its
 * max over the n + 1 Chebyshev extrema of the interval (Ehlich and Zeller, 1964); with n = 8 d that is
 * under 2%, taken with margin.
 */
const APPROX_SAMPLE_SLACK = 1 / 16;
/** Sample count cap: a composite's degree (2^depth) can be large; 2^15 points keep this ~ms per site. */
const MAX_APPROX_SAMPLES = 2 ** 15;

/**
 * Largest |p| over an approximation's fitted interval, for p its float64 model of the encrypted
 * evaluation (Approximation.evaluate): the max over 8 d + 1 Chebyshev-spaced points of the interval
 * (d <= 2^depth the degree: each level at most doubles it) and the ends, times 1 + APPROX_SAMPLE_SLACK:
 * a bound for depth <= 12, a dense sample beyond (MAX_APPROX_SAMPLES). Valid for inputs inside the
 * interval only (the range monitor's check).
 */
export function approximationOutputBound(approx: Pick<Approximation, 'interval' | 'depth' | 'evaluate'>): number {
  // One fit serves many sites (every row block of every head): sample it once.
  const known = outputBounds.get(approx);
  if (known !== undefined) return known;
  const bound = sampledOutputBound(approx);
  outputBounds.set(approx, bound);
  return bound;
}

const outputBounds = new WeakMap<object, number>();

function sampledOutputBound(approx: Pick<Approximation, 'interval' | 'depth' | 'evaluate'>): number {
  const [lo, hi] = approx.interval;
  const n = Math.min(8 * 2 ** Math.max(1, approx.depth), MAX_APPROX_SAMPLES);
  let max = Math.max(Math.abs(approx.evaluate(lo)), Math.abs(approx.evaluate(hi)));
  for (let k = 0; k <= n; k++) {
    const x = (lo + hi) / 2 + ((hi - lo) / 2) * Math.cos((Math.PI * k) / n);
    max = Math.max(max, Math.abs(approx.evaluate(x)));
  }
  return Number.isFinite(max) ? max * (1 + APPROX_SAMPLE_SLACK) : Infinity;
}

/**
 * Magnitude bounds of every value (the max over its slots) by interval arithmetic slot by slot, so that
 * masks and rotations are exact (a rotate-and-sum of a value nonzero in one slot of each segment keeps
 * its bound); inputs without a bound are unbounded (Infinity). `seeds` bound named values in every slot
 * (an approximation's output: approximationOutputBound); a slot gets the smaller of its seed and what
 * interval arithmetic gives.
 */
export function provedMagnitudes(program: FheProgram, inputBounds: Record<string, number>, seeds: ReadonlyMap<string, number> = new Map()): Map<string, number> {
  const n = program.slots;
  const lastUse = new Map<string, number>();
  program.ops.forEach((op, i) => op.args.forEach((x) => lastUse.set(x.name, i)));
  const live = new Map<string, Float64Array>();
  const out = new Map<string, number>();
  // Plain loops (a callback per slot was most of the time of this analysis).
  for (const [index, op] of program.ops.entries()) {
    if (!op.result) continue;
    const [a, b] = op.args.map((x) => live.get(x.name)!);
    let r: Float64Array;
    switch (op.kind) {
      case 'input': {
        const layout = op.layout!;
        r = packSlots(layout, n, new Float64Array(layout.tokens * layout.length).fill(inputBounds[op.tensor!] ?? Infinity));
        break;
      }
      case 'encode': {
        const c = program.constants.get(op.constant!);
        if (!c) throw new FhecError(`unknown constant @${op.constant}`);
        r = constantSlots(c.data, n, c.name); // a fresh vector
        for (let i = 0; i < n; i++) r[i] = Math.abs(r[i]!);
        break;
      }
      case 'add':
      case 'sub':
      case 'add_plain':
        r = new Float64Array(n);
        for (let i = 0; i < n; i++) r[i] = a![i]! + b![i]!;
        break;
      case 'mul':
      case 'mul_plain':
        // 0 x Infinity is 0 here: a slot known to be zero stays zero whatever the other bound.
        r = new Float64Array(n);
        for (let i = 0; i < n; i++) {
          const x = a![i]!;
          const y = b![i]!;
          r[i] = x === 0 || y === 0 ? 0 : x * y;
        }
        break;
      case 'rotate':
        r = rotateSlots(a!, op.step!);
        break;
      case 'refresh':
        r = op.factor === undefined ? a! : a!.map((x) => x * Math.abs(op.factor!));
        break;
      default:
        r = a!;
    }
    const seed = seeds.get(op.result.name);
    if (seed !== undefined) {
      if (r === a) r = Float64Array.from(r);
      for (let i = 0; i < n; i++) r[i] = Math.min(r[i]!, seed);
    }
    out.set(op.result.name, maxAbs(r));
    for (const x of op.args) if (lastUse.get(x.name) === index) live.delete(x.name);
    if (lastUse.has(op.result.name)) live.set(op.result.name, r);
  }
  return out;
}

/**
 * Bounds proved on a refresh-placed (unmanaged) program, carried to the managed program's refreshed
 * values and outputs: refreshes map in order, outputs by tensor and order (scale management adds only
 * rescales, relinearizations, level drops and products by 1, which keep every magnitude).
 */
export function provedOnManaged(placed: FheProgram, managed: FheProgram, provedPlaced: ReadonlyMap<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  const carry = (kind: 'refresh' | 'output', key: (op: FheOp) => string): void => {
    const from = new Map(placed.ops.filter((op) => op.kind === kind).map((op, i) => [`${key(op)}#${i}`, op.args[0]!.name]));
    managed.ops
      .filter((op) => op.kind === kind)
      .forEach((op, i) => {
        const src = from.get(`${key(op)}#${i}`);
        if (src === undefined) throw new FhecError(`internal: the managed program's ${kind} ${i} has no counterpart in the placed program`);
        out.set(op.args[0]!.name, Math.max(out.get(op.args[0]!.name) ?? 0, provedPlaced.get(src) ?? Infinity));
      });
  };
  carry('refresh', () => '');
  carry('output', (op) => op.tensor!);
  return out;
}

const MAXIMA_BATCH = 8;

/** max |x| over the slots of each named value, over all the runs (row-major tensors per input). */
export function calibratedMaxima(program: FheProgram, runs: Record<string, ArrayLike<number>>[], names: readonly string[]): Map<string, number> {
  if (runs.length === 0) throw new FhecError('refresh bounds need at least one calibration run');
  const out = new Map<string, number>(names.map((n) => [n, 0]));
  const seen = new Set<string>();
  // Streaming, a few runs at a time (each value is dropped after its last use; only the maxima of the
  // named ones are kept): constants are built once per batch, live values stay a bounded memory.
  for (let i = 0; i < runs.length; i += MAXIMA_BATCH) {
    evaluatePlainRuns(program, runs.slice(i, i + MAXIMA_BATCH), {
      keep: false,
      onMaxAbs: (name, m) => {
        if (!out.has(name)) return;
        seen.add(name);
        out.set(name, Math.max(out.get(name)!, m));
      },
    });
  }
  for (const n of names) if (!seen.has(n)) throw new FhecError(`%${n} is not a value of the program`);
  return out;
}

/** Chooses each value's bound (see the file comment). */
export function chooseBounds(
  names: readonly string[],
  proved: ReadonlyMap<string, number>,
  calibrated: ReadonlyMap<string, number>,
  margin = REFRESH_BOUND_MARGIN,
  fits?: (value: string, bound: number) => boolean,
): ValueBound[] {
  // An identically zero value still gets a positive bound (the mask needs a radius).
  const cal = (c: number): number => Math.max(c * (1 + margin), CKKS_ERROR_SLACK);
  // The plan's largest bound without proofs: a proved bound up to it raises no refresh level when
  // every refresh sits at one floor; with per-value floors `fits` says whether the mask for it still
  // fits where the value is masked (else the calibrated bound is kept: placement already happened).
  const largest = names.reduce((m, v) => Math.max(m, cal(calibrated.get(v)!)), 0);
  return names.map((value) => {
    const c = calibrated.get(value)!;
    const cb = cal(c);
    const p0 = proved.get(value);
    const p = p0 !== undefined && Number.isFinite(p0) ? p0 * (1 + CKKS_ERROR_SLACK) + CKKS_ERROR_SLACK : undefined;
    const withProof = p !== undefined && p <= largest && (!fits || fits(value, Math.max(p, cb)));
    const source: BoundSource = !withProof ? 'calibrated' : p > cb ? 'proved' : 'both';
    return { value, bound: withProof ? Math.max(p, cb) : cb, source, calibratedMax: c, ...(p !== undefined ? { proved: p } : {}) };
  });
}

/** Names of the refreshed values of a managed program, in program order. */
export function refreshedValues(program: FheProgram): string[] {
  return program.ops.filter((op) => op.kind === 'refresh').map((op) => op.args[0]!.name);
}

/** Bounds of every refreshed value calibrated on `runs` alone (kernels and tests with no input bounds). */
export function calibratedRefreshBounds(program: FheProgram, runs: Record<string, ArrayLike<number>>[], margin = REFRESH_BOUND_MARGIN): Map<string, number> {
  const names = [...new Set(refreshedValues(program))];
  return new Map(chooseBounds(names, new Map(), calibratedMaxima(program, runs, names), margin).map((b) => [b.value, b.bound]));
}
