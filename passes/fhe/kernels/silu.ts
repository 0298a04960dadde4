// silu(x) = x sigmoid(x) and swiglu(gate, up) = silu(gate) * up, elementwise on replicated ciphertexts.
// SiLU is one polynomial fitted on the calibrated interval of its input (padding slots hold 0, which is
// inside any interval around the data, so they stay ~0); swiglu adds one ct x ct product.

import { FhecError } from '../../../ir/errors.js';
import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheValue, SlotLayout } from '../../../ir/fhe/types.js';
import type { Approximation } from '../../approx/approximation.js';
import { approximate } from '../../approx/select.js';
import { nextPow2, replicate } from '../packing.js';
import { applyApproximation } from './approximation.js';
import { CostMeter, describeApproximation, type KernelApproximation, type KernelCost } from './cost.js';
import { checkReplicated } from './layout.js';

export interface Interval {
  lo: number;
  hi: number;
}

export interface SiluOptions {
  /** Target max abs error of silu on the interval (default 1e-3). */
  maxAbsError?: number;
  maxDepth?: number;
  /** Use this approximation instead of fitting one (it must cover the range). */
  approximation?: Approximation;
}

export interface ElementwiseResult {
  values: FheValue[];
  layout: SlotLayout;
  cost: KernelCost;
  approximations: KernelApproximation[];
}

/** The SiLU approximation for an input range (the calibrated [lo, hi], already widened by its margin). */
export function siluApproximation(range: Interval, opts: SiluOptions = {}): Approximation {
  if (opts.approximation) {
    const [a, b] = opts.approximation.interval;
    if (a > range.lo || b < range.hi) throw new FhecError(`silu approximation on [${a}, ${b}] does not cover [${range.lo}, ${range.hi}]`);
    return opts.approximation;
  }
  // Keep 0 inside (padding slots) and avoid an empty interval.
  const lo = Math.min(range.lo, 0);
  const hi = Math.max(range.hi, 0);
  if (!(hi > lo)) throw new FhecError(`empty silu range [${range.lo}, ${range.hi}]`);
  return approximate('silu', [lo, hi], { maxAbsError: opts.maxAbsError ?? 1e-3, maxDepth: opts.maxDepth });
}

const list = (x: FheValue | FheValue[]) => (Array.isArray(x) ? x : [x]);

export function lowerSilu(b: FheBuilder, x: FheValue | FheValue[], layout: SlotLayout, range: Interval, opts: SiluOptions = {}): ElementwiseResult {
  const xs = list(x);
  const meter = new CostMeter(b, xs);
  const approx = siluApproximation(range, opts);
  const values = xs.map((v) => applyApproximation(b, v, approx).value);
  return { values, layout, cost: meter.finish(values), approximations: [describeApproximation('silu(x)', approx)] };
}

/** swiglu(gate, up) = silu(gate) * up; gate and up are ciphertext lists in the same layout. */
export function lowerSwiglu(
  b: FheBuilder,
  gate: FheValue | FheValue[],
  up: FheValue | FheValue[],
  layout: SlotLayout,
  gateRange: Interval,
  opts: SiluOptions = {},
): ElementwiseResult {
  const gs = list(gate);
  const us = list(up);
  if (gs.length !== us.length) throw new FhecError(`swiglu: ${gs.length} gate ciphertexts but ${us.length} up ciphertexts`);
  const meter = new CostMeter(b, [...gs, ...us]);
  const approx = siluApproximation(gateRange, opts);
  const values = gs.map((g, i) => b.mul(applyApproximation(b, g, approx).value, us[i]!));
  return { values, layout, cost: meter.finish(values), approximations: [describeApproximation('silu(gate)', approx)] };
}

/**
 * swiglu with one input: gate and up are the two halves of each token's 2h values (a merged gate/up
 * linear). up is rotated onto gate and masked to copy 0 (a plaintext product, off the critical path),
 * multiplied by silu(gate), and the h results are replicated with period nextPow2(h):
 * same depth as lowerSwiglu, 1 + log2(stride / nextPow2(h)) rotations.
 */
export function lowerSwigluFused(b: FheBuilder, x: FheValue, layout: SlotLayout, gateRange: Interval, opts: SiluOptions = {}): ElementwiseResult {
  checkReplicated(layout, b.slots, 'swiglu');
  if (layout.length % 2 !== 0) throw new FhecError(`swiglu: a fused gate/up input needs an even length, got ${layout.length}`);
  const h = layout.length / 2;
  const meter = new CostMeter(b, [x]);
  const approx = siluApproximation(gateRange, opts);
  const keep = new Float64Array(b.slots);
  for (let t = 0; t < layout.tokens; t++) keep.fill(1, t * layout.stride, t * layout.stride + h);
  const up = b.mulConst(b.rotate(x, h), { kind: 'dense', values: keep }, 'swiglu_up');
  const period = nextPow2(h);
  const value = replicate(b, b.mul(applyApproximation(b, x, approx).value, up), period, layout.stride / period);
  const out: SlotLayout = { length: h, tokens: layout.tokens, stride: layout.stride, period, copies: layout.stride / period };
  return { values: [value], layout: out, cost: meter.finish([value]), approximations: [describeApproximation('silu(gate)', approx)] };
}
