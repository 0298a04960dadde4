// A streaming quantile sketch with a relative-error guarantee (the DDSketch idea, Masson et al.,
// VLDB 2019): |x| is counted in logarithmic buckets (gamma^(k-1), gamma^k] with
// gamma = (1 + a) / (1 - a), and a bucket stands for 2 gamma^k / (gamma + 1), which is within relative
// error a of every magnitude in it. So the estimate of any percentile is within a * |true percentile|
// of it, whatever the distribution, in memory that grows only with the log of the dynamic range
// (about 1,200 buckets for 1e-12..1e12 at a = 1%). Magnitudes below ZERO_CUTOFF count as zero.

export const DEFAULT_ACCURACY = 0.01;
/** Magnitudes at or below this are counted as 0 (absolute error <= 1e-12 for them). */
export const ZERO_CUTOFF = 1e-12;

/** Counts per bucket key, in a dense array that grows to cover the keys seen. */
class Store {
  offset = 0;
  counts = new Float64Array(0);

  /** Make keys lo..hi addressable. */
  ensure(lo: number, hi: number): void {
    const curLo = this.offset;
    const curHi = this.offset + this.counts.length - 1;
    if (this.counts.length && lo >= curLo && hi <= curHi) return;
    const newLo = this.counts.length ? Math.min(lo, curLo) : lo;
    const newHi = this.counts.length ? Math.max(hi, curHi) : hi;
    // Grow with slack so a slowly widening range does not reallocate every time.
    const slack = Math.max(16, (newHi - newLo) >> 2);
    const lo2 = newLo - (newLo < curLo || !this.counts.length ? slack : 0);
    const hi2 = newHi + (newHi > curHi || !this.counts.length ? slack : 0);
    const next = new Float64Array(hi2 - lo2 + 1);
    if (this.counts.length) next.set(this.counts, curLo - lo2);
    this.counts = next;
    this.offset = lo2;
  }

  add(key: number, n = 1): void {
    this.counts[key - this.offset]! += n;
  }
}

export class LogSketch {
  readonly gamma: number;
  private readonly invLnGamma: number;
  private readonly pos = new Store();
  private readonly neg = new Store();
  private zeros = 0;
  private total = 0;

  constructor(readonly accuracy = DEFAULT_ACCURACY) {
    this.gamma = (1 + accuracy) / (1 - accuracy);
    this.invLnGamma = 1 / Math.log(this.gamma);
  }

  get count(): number {
    return this.total;
  }

  key(magnitude: number): number {
    return Math.ceil(Math.log(magnitude) * this.invLnGamma);
  }

  /** The magnitude a bucket stands for. */
  private value(key: number): number {
    return (2 * this.gamma ** key) / (this.gamma + 1);
  }

  /** Prepares for values whose magnitudes (above ZERO_CUTOFF) lie in [lo, hi]; call before add(). */
  reserve(lo: number, hi: number, negative: boolean, positive: boolean): void {
    if (!(hi > ZERO_CUTOFF)) return;
    const kLo = this.key(Math.max(lo, ZERO_CUTOFF * 1.0000001));
    const kHi = this.key(hi);
    if (positive) this.pos.ensure(kLo, kHi);
    if (negative) this.neg.ensure(kLo, kHi);
  }

  /** Counts one finite value; its magnitude's bucket must have been reserved. */
  add(x: number): void {
    this.total++;
    if (x > ZERO_CUTOFF) this.pos.add(this.key(x));
    else if (x < -ZERO_CUTOFF) this.neg.add(this.key(-x));
    else this.zeros++;
  }

  merge(other: LogSketch): void {
    if (other.accuracy !== this.accuracy) throw new Error('cannot merge sketches of different accuracy');
    for (const [mine, theirs] of [[this.pos, other.pos], [this.neg, other.neg]] as const) {
      if (!theirs.counts.length) continue;
      mine.ensure(theirs.offset, theirs.offset + theirs.counts.length - 1);
      for (let i = 0; i < theirs.counts.length; i++) if (theirs.counts[i]) mine.add(theirs.offset + i, theirs.counts[i]!);
    }
    this.zeros += other.zeros;
    this.total += other.total;
  }

  /**
   * The q-quantile (0 <= q <= 1) of the values: an estimate of the element of rank floor(q * (n - 1))
   * in sorted order, within `accuracy` relative error. NaN when empty.
   */
  quantile(q: number): number {
    if (this.total === 0) return NaN;
    const rank = Math.floor(q * (this.total - 1));
    let seen = 0;
    const { neg, pos } = this;
    for (let i = neg.counts.length - 1; i >= 0; i--) {
      seen += neg.counts[i]!;
      if (seen > rank) return -this.value(neg.offset + i);
    }
    seen += this.zeros;
    if (seen > rank) return 0;
    for (let i = 0; i < pos.counts.length; i++) {
      seen += pos.counts[i]!;
      if (seen > rank) return this.value(pos.offset + i);
    }
    return this.value(pos.offset + pos.counts.length - 1);
  }

  /** The q-quantile of the magnitudes |x| (same guarantee). */
  absQuantile(q: number): number {
    if (this.total === 0) return NaN;
    const rank = Math.floor(q * (this.total - 1));
    let seen = this.zeros;
    if (seen > rank) return 0;
    const { neg, pos } = this;
    const lo = Math.min(neg.counts.length ? neg.offset : Infinity, pos.counts.length ? pos.offset : Infinity);
    const hi = Math.max(neg.offset + neg.counts.length - 1, pos.offset + pos.counts.length - 1);
    const at = (s: Store, k: number) => (k >= s.offset && k < s.offset + s.counts.length ? s.counts[k - s.offset]! : 0);
    for (let k = lo; k <= hi; k++) {
      seen += at(neg, k) + at(pos, k);
      if (seen > rank) return this.value(k);
    }
    return this.value(hi);
  }
}
