// Tensor comparison used by tests: max abs error, NaN/inf aware.
import type { Tensor } from '../../ir/tensor.js';

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    if (Number.isNaN(x) && Number.isNaN(y)) continue;
    if (x === y) continue;
    const d = Math.abs(x - y);
    if (!(d <= m)) m = d; // NaN propagates as Infinity-ish: d is NaN -> m becomes NaN
  }
  return m;
}

export function argmaxRows(t: Tensor, rowLen: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < t.data.length / rowLen; r++) {
    let best = 0;
    for (let i = 1; i < rowLen; i++) if (t.data[r * rowLen + i]! > t.data[r * rowLen + best]!) best = i;
    out.push(best);
  }
  return out;
}
