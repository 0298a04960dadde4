// Random arithmetic circuits, run on sim and seal: both agree with a plain float64 interpreter, SEAL
// never reports a scale or level error, and the simulator's predicted error is within 4x of SEAL's.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FheBuilder, type FheProgram, type FheValue } from '../ir/fhe/index.js';
import { chebyshevValue, evalChebyshev } from '../passes/fhe/approximate/chebyshev.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { runProgram } from '../runtime/ckks/execute.js';
import { fheChain, selectParameters } from '../ir/ckks/params.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { makeSimBackend } from '../runtime/sim/backend.js';

type Step =
  | { op: 'add' | 'sub' | 'mul'; a: number; b: number }
  | { op: 'negate'; a: number }
  | { op: 'rotate'; a: number; k: number }
  | { op: 'mul_plain' | 'add_plain'; a: number; seed: number }
  | { op: 'poly'; a: number; c: [number, number, number, number] };

const STEPS = [1, 2, -1, 7, -16];
const MAX_DEPTH = 2;

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ op: fc.constantFrom('add' as const, 'sub' as const, 'mul' as const), a: fc.nat(), b: fc.nat() }),
  fc.record({ op: fc.constant('negate' as const), a: fc.nat() }),
  fc.record({ op: fc.constant('rotate' as const), a: fc.nat(), k: fc.constantFrom(...STEPS) }),
  fc.record({ op: fc.constantFrom('mul_plain' as const, 'add_plain' as const), a: fc.nat(), seed: fc.nat() }),
  fc.record({
    op: fc.constant('poly' as const),
    a: fc.nat(),
    c: fc.tuple(...[0, 1, 2, 3].map(() => fc.double({ min: -1, max: 1, noNaN: true }))) as fc.Arbitrary<[number, number, number, number]>,
  }),
);

function pseudo(seed: number, n: number): Float64Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  return Float64Array.from({ length: n }, () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  });
}

/** Builds the circuit (skipping steps that would exceed the depth) and its plain float64 result. */
function build(steps: Step[], slots: number): { program: FheProgram; expected: Float64Array; ops: number } {
  const layout = { length: slots, tokens: 1, stride: slots, period: slots, copies: 1 };
  const b = new FheBuilder('random', slots);
  const pool: { v: FheValue; plain: Float64Array; depth: number }[] = [];
  const x0 = pseudo(1, slots);
  const x1 = pseudo(2, slots);
  pool.push({ v: b.input('x0', layout), plain: x0, depth: 0 }, { v: b.input('x1', layout), plain: x1, depth: 0 });
  let ops = 0;
  for (const s of steps) {
    const A = pool[s.a % pool.length]!;
    const mapped = (f: (x: number, i: number) => number) => Float64Array.from(A.plain, f);
    let next: { v: FheValue; plain: Float64Array; depth: number } | undefined;
    switch (s.op) {
      case 'add':
      case 'sub':
      case 'mul': {
        const B = pool[s.b % pool.length]!;
        const depth = Math.max(A.depth, B.depth) + (s.op === 'mul' ? 1 : 0);
        if (depth > MAX_DEPTH) continue;
        const f = s.op === 'add' ? (x: number, y: number) => x + y : s.op === 'sub' ? (x: number, y: number) => x - y : (x: number, y: number) => x * y;
        const v = s.op === 'add' ? b.add(A.v, B.v) : s.op === 'sub' ? b.sub(A.v, B.v) : b.mul(A.v, B.v);
        next = { v, plain: Float64Array.from(A.plain, (x, i) => f(x, B.plain[i]!)), depth };
        break;
      }
      case 'negate':
        next = { v: b.negate(A.v), plain: mapped((x) => -x), depth: A.depth };
        break;
      case 'rotate':
        next = { v: b.rotate(A.v, s.k), plain: mapped((_, i) => A.plain[(((i + s.k) % slots) + slots) % slots]!), depth: A.depth };
        break;
      case 'mul_plain':
      case 'add_plain': {
        const c = pseudo(s.seed + 3, slots);
        if (s.op === 'mul_plain') {
          if (A.depth + 1 > MAX_DEPTH) continue;
          next = { v: b.mulConst(A.v, { kind: 'dense', values: c }), plain: mapped((x, i) => x * c[i]!), depth: A.depth + 1 };
        } else next = { v: b.addConst(A.v, { kind: 'dense', values: c }), plain: mapped((x, i) => x + c[i]!), depth: A.depth };
        break;
      }
      case 'poly': {
        if (A.depth + 2 > MAX_DEPTH) continue;
        // Degree 3 on [-1, 1] (depth 2), only for operands inside the interval.
        if (Array.from(A.plain).some((v) => Math.abs(v) > 1)) continue;
        const p = { coeffs: [...s.c], a: -1, b: 1 };
        next = { v: evalChebyshev(b, A.v, p).value, plain: mapped((x) => chebyshevValue(p, x)), depth: A.depth + 2 };
        break;
      }
    }
    if (!next) continue;
    if (Array.from(next.plain).some((v) => Math.abs(v) > 1e4)) continue;
    pool.push(next);
    ops++;
  }
  const out = pool[pool.length - 1]!;
  b.output('y', out.v, layout);
  return { program: b.build(), expected: out.plain, ops };
}

const rms = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return Math.sqrt(s / a.length);
};
const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

describe('random circuits on sim and seal', () => {
  const params = selectParameters({ depth: MAX_DEPTH });
  const slots = params.ringDegree / 2;
  const sim = makeSimBackend(11);

  it('agree with float64, never hit a SEAL scale/level error, and the simulator predicts the error', async () => {
    const ratios: number[] = [];
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 10 }), async (steps) => {
        const { program, expected } = build(steps, slots);
        const managed = manageScales(program, { chain: fheChain(params), topScale: params.scale });
        const inputs = { x0: pseudo(1, slots), x1: pseudo(2, slots) };
        const onSeal = (await runProgram(managed, params, sealBackend, inputs)).outputs.get('y')!;
        const onSim = (await runProgram(managed, params, sim, inputs)).outputs.get('y')!;
        const tol = 1e-5 * Math.max(1, maxAbs(expected));
        expect(rms(onSeal.values, expected)).toBeLessThan(tol);
        expect(rms(onSim.values, expected)).toBeLessThan(tol);
        const measured = rms(onSeal.values, expected);
        const predicted = Math.sqrt(onSim.predictedError!.reduce((s, e) => s + e * e, 0) / slots);
        ratios.push(predicted / measured);
        expect(predicted / measured).toBeGreaterThan(1 / 4);
        expect(predicted / measured).toBeLessThan(4);
      }),
      { numRuns: 12, seed: 20240601 },
    );
    console.log(`sim predicted / seal measured RMS error over ${ratios.length} circuits: ${ratios.map((r) => r.toFixed(2)).join(' ')}`);
  });
});
