// The nonlinearities CKKS has to approximate, each with a float64 reference implementation.
// The references are what every fitted polynomial and composite scheme is measured against.

import { FhecError } from '../../ir/errors.js';

export type FunctionName = 'exp' | 'reciprocal' | 'invsqrt' | 'sigmoid' | 'silu' | 'gelu' | 'gelu_tanh' | 'tanh';

export interface TargetFunction {
  name: FunctionName;
  /** One line for reports, e.g. "x * sigmoid(x)". */
  formula: string;
  f: (x: number) => number;
  /** Real zeros: relative error is not meaningful on an interval that contains one. */
  zeros: readonly number[];
  /**
   * f(x) - oddAround is an odd function (tanh: 0, sigmoid: 1/2). On a symmetric interval only odd
   * Chebyshev terms (plus c0 = oddAround) are then needed.
   */
  oddAround?: number;
  /** Why f cannot be approximated on [a, b] (a pole or a branch point inside), or undefined. */
  domainProblem(a: number, b: number): string | undefined;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/** erf(x) = 2/sqrt(pi) e^{-x^2} sum_n 2^n x^{2n+1} / (1*3*...*(2n+1)); all terms positive, so no cancellation. */
function erfSeries(x: number): number {
  const x2 = 2 * x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 500; n++) {
    term *= x2 / (2 * n + 1);
    sum += term;
    if (term <= sum * 1e-17) break;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x * x) * sum;
}

/**
 * erfc(x) for x >= 2.5 by its continued fraction 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), evaluated
 * backwards with 8 + 200/x^2 terms (converged to ~1e-16 from x = 2.5 up).
 */
function erfcContinuedFraction(x: number): number {
  let t = x;
  for (let k = Math.ceil(8 + 200 / (x * x)); k >= 1; k--) t = x + k / 2 / t;
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / t;
}

/** Complementary error function, accurate to ~1e-15 relative (erfc keeps relative accuracy in the tail). */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x < 2.5) return 1 - erfSeries(x);
  return erfcContinuedFraction(x);
}

export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (Math.abs(x) < 2.5) return x < 0 ? -erfSeries(-x) : erfSeries(x);
  return x < 0 ? erfc(-x) - 1 : 1 - erfc(x);
}

/** Logistic sigmoid, written so that neither branch overflows. */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

const noPoleAtZero = (what: string) => (a: number, b: number): string | undefined =>
  a <= 0 && b >= 0 ? `${what} has a pole at x = 0, which is inside the interval` : undefined;

const FUNCTIONS: Record<FunctionName, TargetFunction> = {
  exp: { name: 'exp', formula: 'e^x', f: Math.exp, zeros: [], domainProblem: () => undefined },
  reciprocal: {
    name: 'reciprocal',
    formula: '1/x',
    f: (x) => 1 / x,
    zeros: [],
    domainProblem: noPoleAtZero('1/x'),
  },
  invsqrt: {
    name: 'invsqrt',
    formula: '1/sqrt(x)',
    f: (x) => 1 / Math.sqrt(x),
    zeros: [],
    domainProblem: (a) => (a <= 0 ? '1/sqrt(x) needs an interval with a > 0' : undefined),
  },
  sigmoid: { name: 'sigmoid', formula: '1/(1+e^-x)', f: sigmoid, zeros: [], oddAround: 0.5, domainProblem: () => undefined },
  silu: { name: 'silu', formula: 'x*sigmoid(x)', f: (x) => x * sigmoid(x), zeros: [0], domainProblem: () => undefined },
  // x * Phi(x) with Phi(x) = erfc(-x/sqrt 2)/2, which keeps relative accuracy for very negative x.
  gelu: { name: 'gelu', formula: 'x*Phi(x) (erf form)', f: (x) => 0.5 * x * erfc(-x / Math.SQRT2), zeros: [0], domainProblem: () => undefined },
  gelu_tanh: {
    name: 'gelu_tanh',
    formula: '0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3)))',
    f: (x) => 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))),
    zeros: [0],
    domainProblem: () => undefined,
  },
  tanh: { name: 'tanh', formula: 'tanh(x)', f: Math.tanh, zeros: [0], oddAround: 0, domainProblem: () => undefined },
};

const ALIASES: Record<string, FunctionName> = {
  recip: 'reciprocal',
  inv: 'reciprocal',
  rsqrt: 'invsqrt',
  inv_sqrt: 'invsqrt',
  inverse_sqrt: 'invsqrt',
  swish: 'silu',
  gelu_erf: 'gelu',
};

export const FUNCTION_NAMES = Object.keys(FUNCTIONS) as FunctionName[];

/** The target function called `name` (or one of its aliases), or an FhecError listing the known names. */
export function targetFunction(name: string): TargetFunction {
  const key = name.toLowerCase();
  const canonical = (key in FUNCTIONS ? key : ALIASES[key]) as FunctionName | undefined;
  if (!canonical) {
    throw new FhecError(`unknown function '${name}' (known: ${FUNCTION_NAMES.join(', ')})`, { field: 'fn' });
  }
  return FUNCTIONS[canonical];
}

/** A zero of fn inside [a, b], if any (relative error targets are then meaningless). */
export function zeroInside(fn: TargetFunction, a: number, b: number): number | undefined {
  return fn.zeros.find((z) => a <= z && z <= b);
}
