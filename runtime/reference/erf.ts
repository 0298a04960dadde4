// The error function to float64 accuracy (about 1e-15), which Math lacks:
// a Taylor series near zero and a continued fraction for erfc in the tails.

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax < 2) {
    // erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
    const x2 = x * x;
    let term = x;
    let sum = x;
    for (let n = 1; n < 80; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return TWO_OVER_SQRT_PI * sum;
  }
  const r = 1 - erfcTail(ax);
  return x < 0 ? -r : r;
}

/** erfc(x) for x >= 2 by the continued fraction x + (1/2)/(x + 1/(x + (3/2)/(x + ...))). */
function erfcTail(x: number): number {
  if (x > 27) return 0;
  let t = x;
  for (let n = 120; n >= 1; n--) t = x + n / 2 / t;
  return Math.exp(-x * x) / (Math.sqrt(Math.PI) * t);
}
