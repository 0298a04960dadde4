// Evaluates a polynomial given in the Chebyshev basis on [a, b] at multiplicative depth
// ceil(log2(deg+1)) (+1 for the map of [a, b] onto [-1, 1]) with O(sqrt(deg)) ct x ct products,
// by baby-step giant-step (Paterson-Stockmeyer in the Chebyshev basis):
// - baby steps T_1..T_B (B = 2^l, l about log2(deg)/2) and giant steps T_{2^j}, each at its optimal
//   depth ceil(log2 i), via T_{m+n} = 2 T_m T_n - T_{m-n} (the factor 2 is an addition, not a level);
// - p = q T_k + r with k the largest power of two <= deg, recursively; leaves of degree < B are
//   linear combinations sum c_i T_i (a scalar product costs one level);
// - the leaves' extra scalar level is absorbed by the slack of every remainder r, except along the
//   chain of quotients, whose leaf is split further (down to degree 1) so that it stays optimal.

import { FhecError } from '../../../ir/errors.js';
import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheValue } from '../../../ir/fhe/types.js';

export interface ChebyshevPolynomial {
  /** c_0..c_d: p(x) = sum c_i T_i(t), t = (2x - a - b) / (b - a). */
  coeffs: number[];
  a: number;
  b: number;
}

export interface ChebyshevCost {
  degree: number;
  /** ct x ct products. */
  nonScalarMultiplications: number;
  scalarMultiplications: number;
  /** Multiplicative depth of the evaluation (what the circuit consumes). */
  depth: number;
  babySteps: number;
}

/** Clenshaw's recurrence: the plaintext value of p at x. */
export function chebyshevValue(p: ChebyshevPolynomial, x: number): number {
  const t = (2 * x - p.a - p.b) / (p.b - p.a);
  let b1 = 0;
  let b2 = 0;
  for (let i = p.coeffs.length - 1; i >= 1; i--) {
    const b0 = 2 * t * b1 - b2 + p.coeffs[i]!;
    b2 = b1;
    b1 = b0;
  }
  return t * b1 - b2 + (p.coeffs[0] ?? 0);
}

function trimmed(c: number[]): number[] {
  let d = c.length - 1;
  while (d > 0 && c[d] === 0) d--;
  return c.slice(0, d + 1);
}

const log2ceil = (n: number): number => (n <= 1 ? 0 : Math.ceil(Math.log2(n)));

/** The depth the evaluator reaches for degree `deg`: ceil(log2(deg+1)), +1 if [a,b] != [-1,1]. */
export function chebyshevDepth(deg: number, mapsDomain: boolean): number {
  return log2ceil(deg + 1) + (mapsDomain ? 1 : 0);
}

/** A ciphertext, or a plain constant when a sub-polynomial is constant. */
type Term = FheValue | number;

export function evalChebyshev(b: FheBuilder, x: FheValue, p: ChebyshevPolynomial): { value: FheValue; cost: ChebyshevCost } {
  if (!(p.b > p.a)) throw new FhecError(`Chebyshev interval [${p.a}, ${p.b}] is empty`);
  if (p.coeffs.length === 0 || p.coeffs.some((c) => !Number.isFinite(c))) throw new FhecError('Chebyshev coefficients must be finite');
  const coeffs = trimmed(p.coeffs);
  const deg = coeffs.length - 1;
  const cost: ChebyshevCost = { degree: deg, nonScalarMultiplications: 0, scalarMultiplications: 0, depth: 0, babySteps: 0 };
  const mapsDomain = p.a !== -1 || p.b !== 1;
  // t = alpha x + beta maps [a, b] onto [-1, 1].
  let t = x;
  if (mapsDomain) {
    const alpha = 2 / (p.b - p.a);
    const beta = -(p.a + p.b) / (p.b - p.a);
    t = b.mulConst(x, { kind: 'splat', value: alpha }, 'cheb_alpha');
    cost.scalarMultiplications++;
    if (beta !== 0) t = b.addConst(t, { kind: 'splat', value: beta }, 'cheb_beta');
  }
  const m = log2ceil(deg + 1);
  const l = Math.max(1, Math.round(m / 2));
  const B = 2 ** l;
  cost.babySteps = B;

  const T = new Map<number, FheValue>([[1, t]]);
  const cheb = (i: number): FheValue => {
    const hit = T.get(i);
    if (hit) return hit;
    const a = 2 ** (log2ceil(i) - 1);
    const c = i - a;
    const prod = b.mul(cheb(a), cheb(c));
    cost.nonScalarMultiplications++;
    const twice = b.add(prod, prod);
    const v = a === c ? b.addConst(twice, { kind: 'splat', value: -1 }, 'minus_one') : b.sub(twice, cheb(a - c));
    T.set(i, v);
    return v;
  };

  const scaled = (v: FheValue, c: number): FheValue => {
    if (c === 1) return v;
    if (c === -1) return b.negate(v);
    cost.scalarMultiplications++;
    return b.mulConst(v, { kind: 'splat', value: c }, 'cheb_c');
  };
  const plus = (u: Term, v: Term): Term => {
    if (typeof u === 'number' && typeof v === 'number') return u + v;
    if (typeof u === 'number') return u === 0 ? v : b.addConst(v as FheValue, { kind: 'splat', value: u }, 'cheb_c');
    if (typeof v === 'number') return v === 0 ? u : b.addConst(u, { kind: 'splat', value: v }, 'cheb_c');
    return b.add(u, v);
  };
  const leaf = (c: number[]): Term => {
    let acc: Term = c[0] ?? 0;
    for (let i = 1; i < c.length; i++) if (c[i] !== 0) acc = plus(acc, scaled(cheb(i), c[i]!));
    return acc;
  };
  const evalRec = (c0: number[], critical: boolean): Term => {
    const c = trimmed(c0);
    const d = c.length - 1;
    if (d <= 1 || (d < B && !critical)) return leaf(c);
    const k = 2 ** (log2ceil(d + 1) - 1);
    const q = [c[k]!, ...c.slice(k + 1).map((v) => 2 * v)];
    const r = c.slice(0, k);
    for (let j = 1; k + j <= d; j++) r[k - j]! -= c[k + j]!;
    const qv = evalRec(q, critical);
    const rv = evalRec(r, false);
    let prod: Term;
    if (typeof qv === 'number') prod = qv === 0 ? 0 : scaled(cheb(k), qv);
    else {
      prod = b.mul(qv, cheb(k));
      cost.nonScalarMultiplications++;
    }
    return plus(prod, rv);
  };
  let result = evalRec(coeffs, true);
  // A constant polynomial still has to be a ciphertext: 0 * x + c.
  if (typeof result === 'number') result = b.addConst(b.mulConst(x, { kind: 'splat', value: 0 }, 'zero'), { kind: 'splat', value: result }, 'cheb_c');
  cost.depth = chebyshevDepth(deg, mapsDomain);
  return { value: result, cost };
}
