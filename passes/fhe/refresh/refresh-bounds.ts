// Bounds on |x| at the points where a ciphertext leaves the evaluator masked (refresh ops, and the
// KV-cache outputs a generation carries into the next step): the mask is sized from them, so a value
// past its bound is hidden less than the README says. Two sources, per value:
// - proved: interval arithmetic on magnitudes over the managed program from bounds on its inputs
//   (|a + b| <= |a| + |b|, |a b| <= |a| |b|, a constant by its largest slot; rotations, rescales and
//   refreshes keep the bound), plus a slack for the CKKS error the ideal values do not have. It is a
//   proof for every input within its bound, but explodes through polynomial evaluations and is
//   infinite for anything computed from an unbounded input (the encrypted KV cache);
// - calibrated: the largest |x| over every slot on the calibration windows (a float64 run of the
//   managed program, ir/fhe/plain-eval.ts), times 1 + margin.
// The proved bound is taken when it is finite and no looser than the calibrated one (already 16 times
// the calibrated max: a looser proof would cost the mask headroom and, with the float64 slot-domain
// mask, precision, for values that never come near it); otherwise the calibrated one. Which one, and
// both figures, go into the plan.

import { FhecError } from '../../../ir/errors.js';
import { evaluatePlain, maxAbs } from '../../../ir/fhe/plain-eval.js';
import type { FheProgram } from '../../../ir/fhe/types.js';
import { constantValueAt } from '../../../ir/fhe/types.js';

/**
 * Calibration margin of a mask bound: 16 times the calibrated max (4 bits). Measured on model A with
 * held-out text (eval-dev.txt: 12 prefill windows, and generations from held-out prompts), the largest
 * |x| at a refresh point reached 8.1 times its calibrated max (a Chebyshev basis value of 1/sum-exp,
 * whose input had left its fitted interval); 16 leaves a factor of 2 above that. The bits cost modulus
 * headroom above the mask and nothing else (with a coefficient-domain mask); a value past its bound is
 * what the key holder's overflow check exists for.
 */
export const REFRESH_BOUND_MARGIN = 15;

/** A proved bound this many times the calibrated one is still taken (beyond, the calibrated one is). */
const PROVED_SLACK_FACTOR = 1;

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

export type BoundSource = 'proved' | 'calibrated';

export interface ValueBound {
  value: string;
  bound: number;
  source: BoundSource;
  /** Largest |x| on the calibration windows. */
  calibratedMax: number;
  /** The interval-arithmetic bound, when finite. */
  proved?: number;
}

/** Magnitude bounds of every value by interval arithmetic; inputs without a bound are unbounded (Infinity). */
export function provedMagnitudes(program: FheProgram, inputBounds: Record<string, number>): Map<string, number> {
  const m = new Map<string, number>();
  const get = (name: string): number => m.get(name)!;
  const times = (a: number, b: number): number => (a === 0 || b === 0 ? 0 : a * b);
  for (const op of program.ops) {
    if (!op.result) continue;
    const [a, b] = op.args.map((x) => get(x.name));
    let r: number;
    switch (op.kind) {
      case 'input':
        r = inputBounds[op.tensor!] ?? Infinity;
        break;
      case 'encode': {
        const c = program.constants.get(op.constant!);
        if (!c) throw new FhecError(`unknown constant @${op.constant}`);
        r = 0;
        if (c.data.kind === 'splat') r = Math.abs(c.data.value);
        else for (let i = 0; i < program.slots; i++) r = Math.max(r, Math.abs(constantValueAt(c.data, i)));
        break;
      }
      case 'add':
      case 'sub':
      case 'add_plain':
        r = a! + b!;
        break;
      case 'mul':
      case 'mul_plain':
        r = times(a!, b!);
        break;
      default:
        r = a!;
    }
    m.set(op.result.name, r);
  }
  return m;
}

/** max |x| over the slots of each named value, over all the runs (row-major tensors per input). */
export function calibratedMaxima(program: FheProgram, runs: Record<string, ArrayLike<number>>[], names: readonly string[]): Map<string, number> {
  if (runs.length === 0) throw new FhecError('refresh bounds need at least one calibration run');
  const out = new Map<string, number>(names.map((n) => [n, 0]));
  const seen = new Set<string>();
  for (const tensors of runs) {
    // Streaming: each value is dropped after its last use, only the maxima of the named ones are kept.
    evaluatePlain(program, tensors, {
      keep: false,
      onValue: (name, v) => {
        if (!out.has(name)) return;
        seen.add(name);
        out.set(name, Math.max(out.get(name)!, maxAbs(v)));
      },
    });
  }
  for (const n of names) if (!seen.has(n)) throw new FhecError(`%${n} is not a value of the program`);
  return out;
}

/** Chooses each value's bound (see the file comment). */
export function chooseBounds(names: readonly string[], proved: ReadonlyMap<string, number>, calibrated: ReadonlyMap<string, number>, margin = REFRESH_BOUND_MARGIN): ValueBound[] {
  return names.map((value) => {
    const c = calibrated.get(value)!;
    // An identically zero value still gets a positive bound (the mask needs a radius).
    const cal = Math.max(c * (1 + margin), CKKS_ERROR_SLACK);
    const p0 = proved.get(value);
    const p = p0 !== undefined && Number.isFinite(p0) ? p0 * (1 + CKKS_ERROR_SLACK) + CKKS_ERROR_SLACK : undefined;
    const useProved = p !== undefined && p <= cal * PROVED_SLACK_FACTOR;
    return { value, bound: useProved ? p : cal, source: useProved ? 'proved' : 'calibrated', calibratedMax: c, ...(p !== undefined ? { proved: p } : {}) };
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
