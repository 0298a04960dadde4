// rms_norm: y = x / sqrt(mean(x^2) + eps) * gamma on replicated token layouts.
//  - x^2 (one ct x ct product), then the sum of each token's d values by rotate-and-sum over the period;
//  - one token (the block is the whole ciphertext, rotations are cyclic on the replicas): every slot
//    already holds the sum; 1/d is folded into the approximation (fit 1/sqrt on d * [lo, hi] of the
//    sum + d eps, and multiply x by sqrt(d) on its own shallow path);
//  - several tokens: rotations cross token blocks, so the sum is right only at each block's first slot;
//    a mask (carrying 1/d) keeps that slot and rotate-and-sum replicates it over the block;
//  - 1/sqrt by the approximation library on the calibrated norm_arg interval, then one product with x.
// Slots outside the d values must hold 0 (they enter the sum of squares).

import { FhecError } from '../../../ir/errors.js';
import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheValue, SlotLayout } from '../../../ir/fhe/types.js';
import type { Approximation } from '../../approx/approximation.js';
import { approximate } from '../../approx/select.js';
import { applyApproximation } from './approximation.js';
import { CostMeter, describeApproximation, type KernelApproximation, type KernelCost } from './cost.js';
import { checkReplicated, perElement, rotateSum } from './layout.js';
import type { Interval } from './silu.js';

export interface RmsNormOptions {
  epsilon: number;
  /** Calibrated interval of mean(x^2) + eps (the `norm_arg` inner range, margin included). */
  normArg: Interval;
  /** Optional gains (length d); default ones. */
  gamma?: ArrayLike<number>;
  /** Relative error target of 1/sqrt on the interval (default 1e-4). */
  maxRelError?: number;
  maxDepth?: number;
}

export interface RmsNormResult {
  value: FheValue;
  layout: SlotLayout;
  cost: KernelCost;
  approximations: KernelApproximation[];
}

export function lowerRmsNorm(b: FheBuilder, x: FheValue, layout: SlotLayout, opts: RmsNormOptions): RmsNormResult {
  checkReplicated(layout, b.slots, 'rms_norm');
  const d = layout.length;
  const { lo, hi } = opts.normArg;
  if (!(lo > 0 && hi > lo)) throw new FhecError(`rms_norm: norm_arg interval [${lo}, ${hi}] must be positive and non-empty`, { field: 'norm_arg' });
  if (opts.gamma && opts.gamma.length !== d) throw new FhecError(`rms_norm: gamma has ${opts.gamma.length} values, expected ${d}`);
  const meter = new CostMeter(b, [x]);
  const gamma = (j: number) => (j < d ? (opts.gamma ? opts.gamma[j]! : 1) : 0);
  const target = { maxRelError: opts.maxRelError ?? 1e-4, maxDepth: opts.maxDepth };
  const sq = b.mul(x, x);
  let sumArg: FheValue;
  let approx: Approximation;
  let xScaled: FheValue;
  if (layout.tokens === 1 && layout.stride === b.slots) {
    // Every slot gets sum_j x_j^2; 1/sqrt(s + d eps) * sqrt(d) = 1/sqrt(s/d + eps).
    const s = rotateSum(b, sq, layout.period, 1);
    sumArg = b.addConst(s, { kind: 'splat', value: d * opts.epsilon }, 'rms_eps');
    approx = approximate('invsqrt', [d * lo, d * hi], target);
    const g = perElement(layout, b.slots, (_t, j) => Math.sqrt(d) * gamma(j));
    xScaled = b.mulConst(x, { kind: 'dense', values: g }, 'rms_gain');
  } else {
    const s = rotateSum(b, sq, layout.period, 1);
    const first = new Float64Array(b.slots);
    for (let t = 0; t < layout.tokens; t++) first[t * layout.stride] = 1 / d;
    const mean = rotateSum(b, b.mulConst(s, { kind: 'dense', values: first }, 'rms_first'), layout.stride, -1);
    // Blocks past the last token hold 0: give them a value inside the interval so 1/sqrt stays tame there.
    const eps = new Float64Array(b.slots).fill((lo + hi) / 2);
    eps.fill(opts.epsilon, 0, layout.tokens * layout.stride);
    sumArg = b.addConst(mean, { kind: 'dense', values: eps }, 'rms_eps');
    approx = approximate('invsqrt', [lo, hi], target);
    xScaled = opts.gamma ? b.mulConst(x, { kind: 'dense', values: perElement(layout, b.slots, (_t, j) => gamma(j)) }, 'rms_gain') : x;
  }
  const inv = applyApproximation(b, sumArg, approx).value;
  const value = b.mul(xScaled, inv);
  return { value, layout, cost: meter.finish([value]), approximations: [describeApproximation('1/sqrt(mean(x^2) + eps)', approx)] };
}
