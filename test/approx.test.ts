import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FhecError } from '../ir/errors.js';
import {
  approximate,
  chebyshevDepth,
  chebyshevNonScalarMuls,
  clenshaw,
  costOfSteps,
  erf,
  erfc,
  evaluateChebyshev,
  expBySquaring,
  interpolateChebyshev,
  interpolantForTolerance,
  invSqrtNewton,
  makeChebyshevPoly,
  minimaxForTolerance,
  REMEZ_MAX_DEGREE,
  reciprocalGoldschmidt,
  reciprocalNewton,
  firstGuess,
  remez,
  sigmoid,
  softmaxSupport,
  targetFunction,
  type Approximation,
  type ChebyshevPoly,
  type ErrorTarget,
} from '../passes/approx/index.js';

// ---------------------------------------------------------------------------------------------------
// Independent measurement: 10^4 uniform points plus 10^4 pseudo-random points (seeded), nothing shared
// with the library's grid (which uses 4096 uniform + 4096 Chebyshev points and refinement).

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function freshPoints(a: number, b: number, seed = 12345): number[] {
  const xs: number[] = [];
  const n = 10_000;
  for (let i = 0; i < n; i++) xs.push(a + ((b - a) * (i + 0.37)) / n);
  const rnd = lcg(seed);
  for (let i = 0; i < n; i++) xs.push(a + (b - a) * rnd());
  xs.push(a, b);
  return xs;
}

function observed(g: (x: number) => number, f: (x: number) => number, a: number, b: number, seed?: number) {
  let abs = 0;
  let rel = 0;
  for (const x of freshPoints(a, b, seed)) {
    const fx = f(x);
    const d = Math.abs(g(x) - fx);
    abs = Math.max(abs, d);
    rel = Math.max(rel, d / Math.abs(fx));
  }
  return { abs, rel };
}

function meetsTarget(m: { abs: number; rel: number }, t: ErrorTarget): boolean {
  return (t.maxAbsError === undefined || m.abs <= t.maxAbsError) && (t.maxRelError === undefined || m.rel <= t.maxRelError);
}

/** Chebyshev sum by the definition T_j(t) = cos(j arccos t), independent of Clenshaw. */
function chebyshevByDefinition(coeffs: number[], a: number, b: number, x: number): number {
  const t = Math.max(-1, Math.min(1, (2 * x - a - b) / (b - a)));
  const th = Math.acos(t);
  return coeffs.reduce((s, c, j) => s + c * Math.cos(j * th), 0);
}

// ---------------------------------------------------------------------------------------------------

describe('reference functions', () => {
  it('erf and erfc match known values (Python math.erf/erfc)', () => {
    expect(erf(1)).toBeCloseTo(0.8427007929497149, 15);
    expect(erf(0.5)).toBeCloseTo(0.5204998778130465, 15);
    expect(erf(-1)).toBeCloseTo(-0.8427007929497149, 15);
    expect(erfc(-2)).toBeCloseTo(1.9953222650189528, 15);
    const tail: [number, number][] = [
      [2.5, 0.0004069520174449589],
      [3, 2.2090496998585438e-5],
      [5, 1.5374597944280351e-12],
      [10, 2.088487583762545e-45],
      [20, 5.3958656116079005e-176],
    ];
    for (const [x, v] of tail) expect(Math.abs(erfc(x) - v) / v).toBeLessThan(1e-12);
  });

  it('sigmoid, SiLU, GELU (both forms) and tanh behave as their definitions', () => {
    expect(sigmoid(0)).toBe(0.5);
    expect(sigmoid(-800)).toBe(0); // no overflow
    expect(sigmoid(3) + sigmoid(-3)).toBeCloseTo(1, 15);
    const silu = targetFunction('silu').f;
    expect(silu(2)).toBeCloseTo(2 / (1 + Math.exp(-2)), 15);
    const gelu = targetFunction('gelu').f;
    const geluTanh = targetFunction('gelu_tanh').f;
    expect(gelu(1)).toBeCloseTo(0.8413447460685429, 14); // 1 * Phi(1)
    expect(gelu(-1)).toBeCloseTo(-0.15865525393145707, 14);
    expect(gelu(-10) / -10).toBeCloseTo(7.61985302416047e-24 / 1, 30); // Phi(-10), no cancellation
    let worst = 0;
    for (let x = -8; x <= 8; x += 0.01) worst = Math.max(worst, Math.abs(gelu(x) - geluTanh(x)));
    expect(worst).toBeGreaterThan(1e-5); // they are different functions...
    expect(worst).toBeLessThan(1e-3); // ...that agree closely
    expect(targetFunction('tanh').f(0.5)).toBe(Math.tanh(0.5));
    expect(targetFunction('rsqrt').name).toBe('invsqrt');
    expect(() => targetFunction('softplus')).toThrow(/unknown function 'softplus'/);
  });
});

describe('Chebyshev interpolation', () => {
  it('reproduces polynomials exactly and T_3 has the unit coefficient vector', () => {
    const cubic = (x: number) => 3 * x ** 3 - 2 * x + 1;
    const c = interpolateChebyshev(cubic, 2, 5, 3);
    for (const x of [2, 2.3, 3.9, 5]) expect(evaluateChebyshev({ a: 2, b: 5, coeffs: c }, x)).toBeCloseTo(cubic(x), 10);
    const t3 = interpolateChebyshev((t) => 4 * t ** 3 - 3 * t, -1, 1, 3);
    t3.forEach((v, j) => expect(v).toBeCloseTo(j === 3 ? 1 : 0, 14));
  });

  it('Clenshaw equals the cos(j arccos t) definition', () => {
    const coeffs = [0.3, -1.2, 0.5, 0.25, -0.125, 0.06];
    for (const x of [-3, -1.5, 0, 0.7, 2]) {
      expect(evaluateChebyshev({ a: -3, b: 2, coeffs }, x)).toBeCloseTo(chebyshevByDefinition(coeffs, -3, 2, x), 13);
    }
    expect(clenshaw([], 0.3)).toBe(0);
  });

  it('depth is ceil(log2(degree+1)), plus 1 for the affine map off [-1, 1]', () => {
    const unit = [0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 63, 64, 127].map((d) => chebyshevDepth(d, -1, 1));
    expect(unit).toEqual([0, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7]);
    expect(chebyshevDepth(7, -8, 8)).toBe(4);
    expect(chebyshevDepth(0, -8, 8)).toBe(0);
  });

  it('baby-step giant-step multiplication counts', () => {
    // d=2: T2. d=3: T2 and T3 (or T2 and one split). d=7: T2,T3,T4 and one split at T4.
    expect([1, 2, 3, 7, 15, 31].map(chebyshevNonScalarMuls)).toEqual([0, 1, 2, 4, 7, 11]);
    // Grows like 2 sqrt(d), far below the d - 1 products of computing every T_j.
    expect(chebyshevNonScalarMuls(255)).toBeLessThan(40);
    for (let d = 2; d < 300; d++) expect(chebyshevNonScalarMuls(d)).toBeLessThanOrEqual(d - 1);
  });

  it('oddness is exploited on symmetric intervals (tanh, sigmoid - 1/2)', () => {
    const c = interpolateChebyshev(sigmoid, -8, 8, 9, 0.5);
    expect(c[0]).toBe(0.5);
    for (let j = 2; j <= 9; j += 2) expect(c[j]).toBe(0);
    const ap = approximate('tanh', [-8, 8], { maxAbsError: 1e-4 });
    const poly = (ap.steps[0] as { poly: ChebyshevPoly }).poly;
    expect(poly.degree % 2).toBe(1);
    expect(ap.evaluate(0)).toBe(0);
    expect(ap.evaluate(-3)).toBe(-ap.evaluate(3));
  });
});

describe('Remez', () => {
  it('lowers the max error vs interpolation at equal degree and equioscillates', () => {
    const f = (x: number) => Math.exp(x) * Math.cos(2 * x);
    for (const degree of [4, 8, 12]) {
      const interp = makeChebyshevPoly(f, -1, 2, interpolateChebyshev(f, -1, 2, degree));
      const r = remez(f, -1, 2, degree, () => 1)!;
      expect(r.converged).toBe(true);
      const mm = makeChebyshevPoly(f, -1, 2, r.coeffs);
      expect(mm.maxError).toBeLessThan(interp.maxError * 0.9);
      // Levelled error is a lower bound of the best error and the achieved error is within 0.1% of it.
      expect(mm.maxError).toBeGreaterThanOrEqual(r.levelledError * (1 - 1e-9));
      expect(mm.maxError).toBeLessThan(r.levelledError * 1.001);
    }
  });

  it('matches the known minimax line of e^x on [0, 1]', () => {
    // Best linear approximation: slope e - 1, error (2 - e + (e-1) ln(e-1)) / 2 = 0.105933...
    const r = remez(Math.exp, 0, 1, 1, () => 1)!;
    const p = (x: number) => evaluateChebyshev({ a: 0, b: 1, coeffs: r.coeffs }, x);
    expect(p(1) - p(0)).toBeCloseTo(Math.E - 1, 6);
    const E = (2 - Math.E + (Math.E - 1) * Math.log(Math.E - 1)) / 2;
    expect(r.levelledError).toBeCloseTo(E, 6);
  });

  it('with a relative weight it beats the interpolant by far on 1/sqrt(x)', () => {
    const f = (x: number) => 1 / Math.sqrt(x);
    const rel = (c: number[]) => observed((x) => evaluateChebyshev({ a: 0.01, b: 10, coeffs: c }, x), f, 0.01, 10).rel;
    const r = remez(f, 0.01, 10, 15, (_x, fx) => Math.abs(fx))!;
    expect(rel(r.coeffs)).toBeLessThan(0.85 * rel(interpolateChebyshev(f, 0.01, 10, 15)));
  });

  it('survives a discontinuous target and the search falls back to what works', () => {
    const step = (x: number) => (x < 0.1 ? -1 : 1);
    const r = remez(step, -1, 1, 9, () => 1);
    expect(r === undefined || Number.isFinite(r.weightedError)).toBe(true);
    // A target no polynomial meets: undefined, not a crash.
    expect(minimaxForTolerance(step, -1, 1, () => 0.01, { maxDegree: 40 })).toBeUndefined();
    // When Remez cannot run (here: a zero weight at x = a), the interpolant is returned.
    const tol = (x: number) => (x === -3 ? Infinity : 1e-6);
    expect(remez(Math.sin, -3, 3, 9, tol)).toBeUndefined();
    expect(minimaxForTolerance(Math.sin, -3, 3, tol, { maxDegree: 40 })).toEqual(interpolantForTolerance(Math.sin, -3, 3, tol, { maxDegree: 40 }));
    // A reachable one is met on an independent grid.
    const c = minimaxForTolerance(Math.sin, -3, 3, () => 1e-6, { maxDegree: 40 })!;
    expect(observed((x) => evaluateChebyshev({ a: -3, b: 3, coeffs: c }, x), Math.sin, -3, 3).abs).toBeLessThan(1e-6);
  });
});

// ---------------------------------------------------------------------------------------------------

interface Case {
  fn: string;
  interval: [number, number];
  target: ErrorTarget;
}

const REALISTIC: Case[] = [
  { fn: 'exp', interval: [-20, 0], target: { maxAbsError: 1e-6 } },
  { fn: 'exp', interval: [-8, 8], target: { maxRelError: 1e-4 } },
  { fn: 'reciprocal', interval: [1, 64], target: { maxRelError: 1e-4 } },
  { fn: 'reciprocal', interval: [0.5, 200], target: { maxRelError: 1e-3 } },
  { fn: 'invsqrt', interval: [1e-3, 10], target: { maxRelError: 1e-2 } },
  { fn: 'invsqrt', interval: [0.01, 400], target: { maxRelError: 1e-2 } },
  { fn: 'sigmoid', interval: [-8, 8], target: { maxAbsError: 1e-4 } },
  { fn: 'sigmoid', interval: [-20, 20], target: { maxAbsError: 1e-3 } },
  { fn: 'silu', interval: [-8, 8], target: { maxAbsError: 1e-3 } },
  { fn: 'silu', interval: [-20, 20], target: { maxAbsError: 1e-2 } },
  { fn: 'gelu', interval: [-8, 8], target: { maxAbsError: 1e-3 } },
  { fn: 'gelu', interval: [-20, 20], target: { maxAbsError: 1e-2 } },
  { fn: 'gelu_tanh', interval: [-8, 8], target: { maxAbsError: 1e-3 } },
  { fn: 'gelu_tanh', interval: [-20, 20], target: { maxAbsError: 1e-2 } },
  { fn: 'tanh', interval: [-8, 8], target: { maxAbsError: 1e-4 } },
  { fn: 'tanh', interval: [-20, 20], target: { maxAbsError: 1e-3 } },
];

describe('approximate on realistic intervals', () => {
  const results = new Map<Case, Approximation>();
  const get = (c: Case) => {
    let r = results.get(c);
    if (!r) results.set(c, (r = approximate(c.fn, c.interval, c.target)));
    return r;
  };

  it.each(REALISTIC.map((c) => [`${c.fn} on [${c.interval}]`, c] as const))('%s meets its target and its stated error', (_name, c) => {
    const ap = get(c);
    const f = targetFunction(c.fn).f;
    const seen = observed(ap.evaluate, f, ...c.interval);
    expect(meetsTarget({ abs: ap.maxError, rel: ap.maxRelError }, c.target)).toBe(true);
    expect(meetsTarget(seen, c.target)).toBe(true);
    expect(seen.abs).toBeLessThanOrEqual(ap.maxError);
    if (Number.isFinite(ap.maxRelError)) expect(seen.rel).toBeLessThanOrEqual(ap.maxRelError);
    expect(ap.interval).toEqual(c.interval);
    expect(ap.describe()).toContain(`depth ${ap.depth}`);
    // depth and cost are those of the steps
    expect(costOfSteps(ap.steps)).toEqual({ depth: ap.depth, nonScalarMuls: ap.nonScalarMuls });
  });

  it('single polynomials have the minimal degree: degree - 1 fails with interpolation and with Remez', () => {
    for (const c of REALISTIC) {
      const ap = get(c);
      if (ap.kind !== 'chebyshev') continue;
      const poly = (ap.steps[0] as { poly: ChebyshevPoly }).poly;
      const { f, oddAround } = targetFunction(c.fn);
      const [a, b] = c.interval;
      expect(poly.depth).toBe(ap.depth);
      expect(poly.depth).toBe(Math.ceil(Math.log2(poly.degree + 1)) + 1);
      const d = poly.degree - 1;
      const interp = interpolateChebyshev(f, a, b, d, oddAround);
      expect(meetsTarget(observed((x) => evaluateChebyshev({ a, b, coeffs: interp }, x), f, a, b), c.target)).toBe(false);
      const tol = c.target.maxAbsError !== undefined ? () => c.target.maxAbsError! : (_x: number, fx: number) => c.target.maxRelError! * Math.abs(fx);
      // Remez is only tried up to REMEZ_MAX_DEGREE (it costs O(degree^3) per iteration).
      const r = d <= REMEZ_MAX_DEGREE ? remez(f, a, b, d, tol, { oddAround }) : undefined;
      if (r) expect(meetsTarget(observed((x) => evaluateChebyshev({ a, b, coeffs: r.coeffs }, x), f, a, b), c.target)).toBe(false);
    }
  });

  it('picks the cheapest scheme: never deeper (or, at equal depth, costlier) than the single polynomial', () => {
    for (const c of REALISTIC.filter((c) => ['exp', 'reciprocal', 'invsqrt'].includes(c.fn))) {
      const best = get(c);
      let single: Approximation | undefined;
      try {
        single = approximate(c.fn, c.interval, { ...c.target, schemes: ['chebyshev'] });
      } catch {
        single = undefined;
      }
      if (single) {
        expect(best.depth).toBeLessThanOrEqual(single.depth);
        if (best.depth === single.depth) expect(best.nonScalarMuls).toBeLessThanOrEqual(single.nonScalarMuls);
      }
    }
  });
});

describe('composite schemes', () => {
  it('exp by squaring computes p(x)^(2^k) and costs the polynomial plus k levels', () => {
    const k = 3;
    const g = (x: number) => Math.exp(x / 8);
    const inner = makeChebyshevPoly(g, -20, 0, interpolateChebyshev(g, -20, 0, 9));
    const ap = expBySquaring([-20, 0], k, inner);
    for (const x of [-20, -7.3, -0.1]) expect(ap.evaluate(x)).toBeCloseTo(evaluateChebyshev(inner, x) ** 8, 14);
    expect(ap.depth).toBe(inner.depth + k);
    expect(ap.nonScalarMuls).toBe(chebyshevNonScalarMuls(9) + k);
    expect(ap.kind).toBe('composite');
    // relative error of the inner polynomial is amplified about 2^k times
    expect(ap.maxRelError).toBeGreaterThan(4 * inner.maxRelError);
    expect(ap.maxRelError).toBeLessThan(8.1 * inner.maxRelError);
  });

  it('Newton and Goldschmidt for 1/x square the relative error each step, at 2 and 1 levels per step', () => {
    const guess = firstGuess('reciprocal', [1, 64], 3);
    for (const n of [1, 2, 3]) {
      const newton = reciprocalNewton([1, 64], guess, n);
      const gold = reciprocalGoldschmidt([1, 64], guess, n);
      for (const x of [1, 5.5, 40]) {
        const e0 = 1 - x * evaluateChebyshev(guess, x);
        const expected = e0 ** (2 ** n);
        expect(1 - x * newton.evaluate(x)).toBeCloseTo(expected, 12);
        expect(1 - x * gold.evaluate(x)).toBeCloseTo(expected, 12);
      }
      expect(newton.depth).toBe(guess.depth + 2 * n);
      expect(gold.depth).toBe(guess.depth + 1 + n);
      expect(newton.nonScalarMuls).toBe(chebyshevNonScalarMuls(3) + 2 * n);
      expect(gold.nonScalarMuls).toBe(chebyshevNonScalarMuls(3) + 2 * n);
    }
    expect(reciprocalNewton([1, 64], guess, 4).maxRelError).toBeLessThan(guess.maxRelError ** 16 * 1.01 + 1e-15);
  });

  it('Newton for 1/sqrt(x) converges quadratically at 2 levels and 3 products per step', () => {
    const f = (x: number) => 1 / Math.sqrt(x);
    const guess = firstGuess('invsqrt', [0.01, 400], 31);
    let prev = Infinity;
    for (const n of [1, 2, 3, 4, 5, 6, 7]) {
      const ap = invSqrtNewton([0.01, 400], guess, n);
      expect(ap.depth).toBe(guess.depth + 2 * n);
      expect(ap.nonScalarMuls).toBe(chebyshevNonScalarMuls(31) + 3 * n);
      // r -> -(3/2) r^2 - r^3/2 for the relative error r: quadratic once r is small
      expect(ap.maxRelError).toBeLessThan(prev);
      if (prev < 0.2) expect(ap.maxRelError).toBeLessThan(1.6 * prev * prev + 1e-14);
      prev = ap.maxRelError;
      // y(3 - x y^2)/2 directly, step by step
      const x = 3.7;
      let y = evaluateChebyshev(guess, x);
      for (let i = 0; i < n; i++) y = (y * (3 - x * y * y)) / 2;
      expect(ap.evaluate(x)).toBeCloseTo(y, 12);
    }
    expect(prev).toBeLessThan(1e-12);
    // The guess is rescaled for Newton: one step from it beats one step from the plain relative minimax.
    const plain = remez(f, 0.01, 400, 31, (_x, fx) => Math.abs(fx))!;
    const fromPlain = invSqrtNewton([0.01, 400], makeChebyshevPoly(f, 0.01, 400, plain.coeffs), 1);
    expect(invSqrtNewton([0.01, 400], guess, 1).maxRelError).toBeLessThan(0.8 * fromPlain.maxRelError);
  });

  it('softmax pieces: predicted error bounds the float64 model on random rows', () => {
    const n = 16;
    const sm = softmaxSupport({ logitRange: [-12, 4], shift: 4, length: n, maxAbsError: 1e-3, sumRange: [1, n] });
    expect(sm.expInterval).toEqual([-16, 0]);
    expect(sm.predictedMaxAbsError).toBeLessThanOrEqual(1e-3);
    expect(sm.depth).toBe(sm.exp.depth + sm.reciprocal.depth + 1);
    const rnd = lcg(7);
    let worst = 0;
    for (let row = 0; row < 300; row++) {
      const logits = Array.from({ length: n }, () => -12 + 16 * rnd());
      logits[0] = 4; // the calibrated max occurs, so the sum is in [1, n]
      const m = Math.max(...logits);
      const ex = logits.map((x) => Math.exp(x - m));
      const s = ex.reduce((p, q) => p + q, 0);
      const got = sm.evaluate(logits);
      got.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - ex[i]! / s))));
    }
    expect(worst).toBeLessThanOrEqual(sm.predictedMaxAbsError);
    expect(worst).toBeGreaterThan(0);
  });
});

describe('selection limits and errors', () => {
  it('respects maxDepth and reports the best achievable error when the target is impossible', () => {
    const ap = approximate('sigmoid', [-8, 8], { maxAbsError: 0.05, maxDepth: 4 });
    expect(ap.depth).toBeLessThanOrEqual(4);
    let err: unknown;
    try {
      approximate('exp', [-20, 0], { maxAbsError: 1e-12, maxDepth: 4 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FhecError);
    const msg = (err as FhecError).message;
    expect(msg).toMatch(/cannot approximate exp on \[-20, 0\] to abs error 1\.00e-12 within depth 4: best achievable is abs error ([0-9.e+-]+)/);
    const best = Number(/best achievable is abs error ([0-9.e+-]+)/.exec(msg)![1]);
    expect(best).toBeGreaterThan(1e-12);
    // ...and that best is real: a depth-4 polynomial of degree 7 does about that well
    const c = interpolateChebyshev(Math.exp, -20, 0, 7);
    const seen = observed((x) => evaluateChebyshev({ a: -20, b: 0, coeffs: c }, x), Math.exp, -20, 0).abs;
    expect(best).toBeLessThanOrEqual(seen * 1.0001);
  });

  it('rejects bad inputs with clear FhecErrors', () => {
    const cases: [() => unknown, RegExp][] = [
      [() => approximate('reciprocal', [-1, 4], { maxRelError: 1e-3 }), /pole at x = 0/],
      [() => approximate('invsqrt', [0, 4], { maxRelError: 1e-3 }), /needs an interval with a > 0/],
      [() => approximate('tanh', [-8, 8], { maxRelError: 1e-3 }), /relative error target is not meaningful for tanh.*0 at x = 0/],
      [() => approximate('exp', [1, 1], { maxAbsError: 1e-3 }), /a < b/],
      [() => approximate('exp', [0, 1], {}), /no error target/],
      [() => approximate('exp', [0, 1], { maxAbsError: -1 }), /maxAbsError must be a positive number/],
      [() => approximate('exp', [0, 1], { maxAbsError: 1e-3, maxDepth: 1.5 }), /maxDepth must be a non-negative integer/],
      [() => approximate('relu', [0, 1], { maxAbsError: 1e-3 }), /unknown function 'relu'/],
    ];
    for (const [run, re] of cases) {
      expect(run).toThrow(FhecError);
      expect(run).toThrow(re);
    }
  });

  it('relative targets on functions without zeros are met (sigmoid, exp, negative reciprocal)', () => {
    for (const c of [
      { fn: 'sigmoid', interval: [-8, 8], target: { maxRelError: 1e-3 } },
      { fn: 'reciprocal', interval: [-50, -2], target: { maxRelError: 1e-5 } },
      { fn: 'exp', interval: [-20, 0], target: { maxRelError: 1e-3, maxAbsError: 1e-4 } },
    ] as Case[]) {
      const ap = approximate(c.fn, c.interval, c.target);
      const seen = observed(ap.evaluate, targetFunction(c.fn).f, ...c.interval);
      expect(meetsTarget(seen, c.target)).toBe(true);
      expect(seen.rel).toBeLessThanOrEqual(ap.maxRelError);
    }
  });
});

describe('property: stated maxError is never below the error a fresh grid observes', () => {
  it('random functions, intervals and targets', () => {
    const fnArb = fc.constantFrom('exp', 'reciprocal', 'invsqrt', 'sigmoid', 'silu', 'gelu', 'gelu_tanh', 'tanh');
    fc.assert(
      fc.property(
        fnArb,
        fc.double({ min: 0.05, max: 0.95, noNaN: true }),
        fc.double({ min: 0.5, max: 12, noNaN: true }),
        fc.integer({ min: 2, max: 6 }),
        fc.integer({ min: 1, max: 1000 }),
        (fn, pos, width, digits, seed) => {
          // positive intervals for the functions with a pole or branch point at 0
          const interval: [number, number] =
            fn === 'reciprocal' || fn === 'invsqrt' ? [0.05 + pos, 0.05 + pos + width * 4]
            : fn === 'exp' ? [-width * 2 * pos - 1, width * 2 * (1 - pos)]
            : [-width * pos * 2, width * (1 - pos) * 2];
          const target: ErrorTarget = fn === 'reciprocal' || fn === 'invsqrt' ? { maxRelError: 10 ** -digits } : { maxAbsError: 10 ** -digits };
          const ap = approximate(fn, interval, { ...target, maxDegree: 200 });
          const seen = observed(ap.evaluate, targetFunction(fn).f, ...interval, seed);
          expect(seen.abs).toBeLessThanOrEqual(ap.maxError);
          if (Number.isFinite(ap.maxRelError)) expect(seen.rel).toBeLessThanOrEqual(ap.maxRelError);
          expect(meetsTarget({ abs: ap.maxError, rel: ap.maxRelError }, target)).toBe(true);
        },
      ),
      { numRuns: 25, seed: 20240501 },
    );
  });
});

describe('degree selection is monotone in the target', () => {
  // A tighter error target never gets a lower degree, depth or cost than a looser one.
  const cases: [string, [number, number]][] = [
    ['exp', [-8, 0]],
    ['sigmoid', [-8, 8]],
    ['silu', [-6, 6]],
    ['tanh', [-4, 4]],
    ['reciprocal', [1, 16]],
    ['invsqrt', [0.5, 8]],
  ];
  for (const [fn, interval] of cases) {
    it(`${fn} on [${interval.join(', ')}]`, () => {
      const targets = [1e-2, 1e-3, 1e-4, 1e-5];
      const cheb = targets.map((t) => approximate(fn, interval, { maxAbsError: t, schemes: ['chebyshev'] }));
      const best = targets.map((t) => approximate(fn, interval, { maxAbsError: t }));
      for (let i = 1; i < targets.length; i++) {
        const deg = (a: Approximation) => (a.steps[0] as { poly?: ChebyshevPoly }).poly?.degree ?? NaN;
        expect(deg(cheb[i]!), `${fn} degree at ${targets[i]}`).toBeGreaterThanOrEqual(deg(cheb[i - 1]!));
        expect(cheb[i]!.depth).toBeGreaterThanOrEqual(cheb[i - 1]!.depth);
        expect(best[i]!.depth).toBeGreaterThanOrEqual(best[i - 1]!.depth);
        expect(best[i]!.maxError).toBeLessThanOrEqual(targets[i]!);
      }
    });
  }
});
