// Calibrated value ranges: what a tensor held over a calibration set, and the interval a polynomial
// approximation or a fixed-point (CKKS) encoding of it must cover. The calibration pass
// (passes/calibrate) fills them in; the textual IR prints them as `range<...>` after a value's type.

import type { DType } from '../dtype.js';

/** Four percentiles of a distribution: 0.1%, 1%, 99% and 99.9%. */
export interface Percentiles {
  p0_1: number;
  p1: number;
  p99: number;
  p99_9: number;
}

export const PERCENTILE_KEYS = ['p0_1', 'p1', 'p99', 'p99_9'] as const;
/** The fraction (0..1) each percentile key stands for. */
export const PERCENTILE_FRACTIONS: Record<keyof Percentiles, number> = { p0_1: 0.001, p1: 0.01, p99: 0.99, p99_9: 0.999 };

export interface ValueRange {
  /** Finite, unmasked elements observed (the statistics below are over these). */
  count: number;
  /** Elements that were attention-mask fills (see isMaskFill): excluded from every statistic. */
  masked: number;
  /** NaN elements: excluded from every statistic. */
  nan: number;
  /** Exact extremes of the observed elements. */
  min: number;
  max: number;
  /** max(|min|, |max|). */
  absMax: number;
  /** Exact mean and (population) standard deviation. */
  mean: number;
  std: number;
  /** Percentiles of the values and of their magnitudes |x|; estimates, see `percentileAccuracy`. */
  pct: Percentiles;
  absPct: Percentiles;
  /**
   * Relative accuracy of the percentiles: each estimate q~ of a true percentile q satisfies
   * |q~ - q| <= percentileAccuracy * |q| (plus 1e-12 absolute for values near zero). 0 when exact.
   */
  percentileAccuracy: number;
  /** Relative safety margin applied to get [lo, hi] (0.1 = 10%). */
  margin: number;
  /**
   * The interval the value is assumed to stay in: each end moved away from zero by `margin` times its
   * magnitude, lo = min - margin*|min| and hi = max + margin*|max| (see withMargin). The sign of each
   * end is kept, so a positive range (the argument of a square root) stays positive.
   */
  lo: number;
  hi: number;
  /** Ranges of quantities inside the producing op (keys such as 'scores', 'exp_arg', 'exp_sum', 'norm_arg'). */
  inner?: Record<string, ValueRange>;
}

/** The interval [lo, hi] for a margin (see ValueRange.lo). */
export function withMargin(min: number, max: number, margin: number): { lo: number; hi: number } {
  return { lo: min - margin * Math.abs(min), hi: max + margin * Math.abs(max) };
}

/** The same range with another margin (and the interval recomputed from min and max). */
export function remargin(r: ValueRange, margin: number): ValueRange {
  const inner = r.inner && Object.fromEntries(Object.entries(r.inner).map(([k, v]) => [k, remargin(v, margin)]));
  return { ...r, margin, ...withMargin(r.min, r.max, margin), ...(inner ? { inner } : {}) };
}

/**
 * Bits above the binary point a fixed-point value in [lo, hi] needs, sign excluded: the smallest
 * b >= 0 with max(|lo|, |hi|) <= 2^b. In CKKS, a value encoded at scale 2^s needs s + b + 1 bits of
 * modulus (the 1 for the sign).
 */
export function integerBits(r: Pick<ValueRange, 'lo' | 'hi'>): number {
  const m = Math.max(Math.abs(r.lo), Math.abs(r.hi));
  if (!(m > 1)) return 0;
  return Math.ceil(Math.log2(m));
}

export interface PrecisionTarget {
  /** Absolute precision wanted (the quantum 2^-bits must not exceed it). */
  absolute?: number;
  /** Else precision relative to the value's RMS magnitude sqrt(mean^2 + std^2) (default 2^-10). */
  relative?: number;
}

export const DEFAULT_RELATIVE_PRECISION = 2 ** -10;

/**
 * Fractional bits (CKKS scale bits of the value itself, noise aside) for a target precision: the
 * smallest f >= 0 with 2^-f <= target, where target is `absolute`, or `relative` times the RMS
 * magnitude of the observed values (so a tensor of magnitude 1e-3 gets 10 more bits than one of 1).
 */
export function scaleBits(r: Pick<ValueRange, 'mean' | 'std' | 'absMax'>, target: PrecisionTarget = {}): number {
  let abs = target.absolute;
  if (abs === undefined) {
    const rms = Math.hypot(r.mean, r.std);
    const magnitude = rms > 0 && Number.isFinite(rms) ? rms : r.absMax;
    abs = (target.relative ?? DEFAULT_RELATIVE_PRECISION) * (magnitude > 0 ? magnitude : 1);
  }
  if (!(abs > 0)) return 0;
  return Math.max(0, Math.ceil(-Math.log2(abs)));
}

/** Largest finite magnitude per float dtype (integers: the float32 one, as exporters use it for masks). */
function maxFinite(dtype: DType): number {
  switch (dtype) {
    case 'float16':
      return 65504;
    case 'bfloat16':
      return 3.3895313892515355e38;
    default:
      return 3.4028234663852886e38;
  }
}

/**
 * Whether x is an attention-mask fill rather than data: an infinity, or at least half the dtype's
 * largest finite magnitude (float32's lowest, -3.4e38, plus a score is still below -1.7e38; float16
 * masks use -65504). Such elements are counted in `masked` and left out of the statistics, since FHE
 * lowering applies masks as plaintext, not through an approximation.
 */
export function isMaskFill(x: number, dtype: DType): boolean {
  return Math.abs(x) >= 0.5 * maxFinite(dtype);
}

/** The threshold of isMaskFill for a dtype: |x| >= this (including infinities) is a fill. */
export function maskFillThreshold(dtype: DType): number {
  return 0.5 * maxFinite(dtype);
}
