// Streaming statistics of one calibrated quantity over every tensor it took: exact count, min, max,
// mean and standard deviation (per-tensor two-pass sums merged with Chan et al.'s formula), and a
// LogSketch for percentiles. Memory is fixed per quantity, whatever the number of calibration sets.

import type { DType } from '../../ir/dtype.js';
import { maskFillThreshold, PERCENTILE_FRACTIONS, PERCENTILE_KEYS, withMargin, type Percentiles, type ValueRange } from '../../ir/graph/range.js';
import { DEFAULT_ACCURACY, LogSketch } from './sketch.js';

export class RangeAccumulator {
  count = 0;
  masked = 0;
  nan = 0;
  min = Infinity;
  max = -Infinity;
  private minAbs = Infinity;
  private mean = 0;
  /** Sum of squared deviations from the mean. */
  private m2 = 0;
  readonly sketch: LogSketch;

  constructor(accuracy = DEFAULT_ACCURACY) {
    this.sketch = new LogSketch(accuracy);
  }

  /**
   * Adds every element of `data` (a tensor of dtype `dtype`). NaNs and mask fills (isMaskFill) are
   * counted apart and left out of the statistics.
   */
  addAll(data: ArrayLike<number>, dtype: DType = 'float64'): void {
    const thr = maskFillThreshold(dtype);
    const n = data.length;
    let cnt = 0;
    let sum = 0;
    let lo = Infinity;
    let hi = -Infinity;
    let minAbs = Infinity;
    let masked = 0;
    let nan = 0;
    for (let i = 0; i < n; i++) {
      const x = data[i]!;
      if (x !== x) {
        nan++;
        continue;
      }
      const ax = x < 0 ? -x : x;
      if (ax >= thr) {
        masked++;
        continue;
      }
      cnt++;
      sum += x;
      if (x < lo) lo = x;
      if (x > hi) hi = x;
      if (ax < minAbs) minAbs = ax;
    }
    this.masked += masked;
    this.nan += nan;
    if (cnt === 0) return;
    const meanT = sum / cnt;
    const sk = this.sketch;
    sk.reserve(minAbs, Math.max(-lo, hi), lo < 0, hi > 0);
    let m2 = 0;
    for (let i = 0; i < n; i++) {
      const x = data[i]!;
      if (x !== x || (x < 0 ? -x : x) >= thr) continue;
      const d = x - meanT;
      m2 += d * d;
      sk.add(x);
    }
    this.mergeMoments(cnt, meanT, m2);
    if (lo < this.min) this.min = lo;
    if (hi > this.max) this.max = hi;
    if (minAbs < this.minAbs) this.minAbs = minAbs;
  }

  private mergeMoments(n: number, mean: number, m2: number): void {
    const total = this.count + n;
    const delta = mean - this.mean;
    this.mean += (delta * n) / total;
    this.m2 += m2 + (delta * delta * this.count * n) / total;
    this.count = total;
  }

  merge(other: RangeAccumulator): void {
    this.masked += other.masked;
    this.nan += other.nan;
    if (other.count === 0) return;
    this.mergeMoments(other.count, other.mean, other.m2);
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
    this.minAbs = Math.min(this.minAbs, other.minAbs);
    this.sketch.merge(other.sketch);
  }

  /** The statistics as a ValueRange with the given margin (all zeros when nothing was observed). */
  toRange(margin: number): ValueRange {
    const empty = this.count === 0;
    const min = empty ? 0 : this.min;
    const max = empty ? 0 : this.max;
    const absMax = Math.max(Math.abs(min), Math.abs(max));
    const minAbs = empty ? 0 : this.minAbs;
    // Clamping to the exact extremes keeps min <= p0.1 <= ... <= p99.9 <= max and never adds error.
    const clamp = (x: number, a: number, b: number) => (empty ? 0 : Math.min(b, Math.max(a, x)));
    const pct = {} as Percentiles;
    const absPct = {} as Percentiles;
    for (const k of PERCENTILE_KEYS) {
      pct[k] = clamp(this.sketch.quantile(PERCENTILE_FRACTIONS[k]), min, max);
      absPct[k] = clamp(this.sketch.absQuantile(PERCENTILE_FRACTIONS[k]), minAbs, absMax);
    }
    return {
      count: this.count,
      masked: this.masked,
      nan: this.nan,
      min,
      max,
      absMax,
      mean: empty ? 0 : this.mean,
      std: empty ? 0 : Math.sqrt(this.m2 / this.count),
      pct,
      absPct,
      percentileAccuracy: this.sketch.accuracy,
      margin,
      ...withMargin(min, max, margin),
    };
  }
}
