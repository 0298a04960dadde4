// The float64 evaluator of FHE programs (ir/fhe/plain-eval.ts): its batched, streaming mode (several
// input sets at once, slot vectors reused after their last use) gives exactly what one run at a time
// with every value kept gives, on random programs that share vectors between values (rescale,
// relinearize and refresh pass their argument through; an encoded constant is one vector for all runs).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FheBuilder } from '../ir/fhe/builder.js';
import { evaluatePlain, evaluatePlainRuns, maxAbs } from '../ir/fhe/plain-eval.js';
import type { FheValue } from '../ir/fhe/types.js';
import { replicatedLayout } from '../passes/fhe/layout/packing.js';

const SLOTS = 64;
const LAYOUT = replicatedLayout(8, SLOTS, 2);

type Step = { kind: number; a: number; b: number; step: number; value: number };

function build(steps: Step[]) {
  const b = new FheBuilder('t', SLOTS);
  const xs: FheValue[] = [b.input('x', LAYOUT), b.input('y', LAYOUT)];
  const pick = (i: number) => xs[i % xs.length]!;
  for (const s of steps) {
    const a = pick(s.a);
    const c = pick(s.b);
    switch (s.kind) {
      case 0: xs.push(b.add(a, c)); break;
      case 1: xs.push(b.sub(a, c)); break;
      case 2: xs.push(b.mul(a, c)); break;
      case 3: xs.push(b.rotate(a, s.step)); break;
      case 4: xs.push(b.negate(a)); break;
      case 5: xs.push(b.refresh(a)); break;
      case 6: xs.push(b.mulConst(a, { kind: 'splat', value: s.value })); break;
      default: xs.push(b.addConst(a, { kind: 'dense', values: Float64Array.from({ length: SLOTS }, (_, i) => s.value * Math.sin(i)) })); break;
    }
  }
  // Outputs: the last value and one from the middle (read while later values are computed).
  b.output('last', xs[xs.length - 1]!, LAYOUT);
  b.output('mid', xs[Math.floor(xs.length / 2)]!, LAYOUT);
  return b.build();
}

const step = fc.record({ kind: fc.integer({ min: 0, max: 7 }), a: fc.nat(40), b: fc.nat(40), step: fc.integer({ min: -70, max: 70 }), value: fc.double({ min: -2, max: 2, noNaN: true }) });
const run = (seed: number) => ({
  x: Array.from({ length: 16 }, (_, i) => Math.cos(seed + i)),
  y: Array.from({ length: 16 }, (_, i) => Math.sin(seed * 3 + i)),
});

describe('evaluatePlainRuns', () => {
  it('streams several runs with reused vectors and gives every value and output of one run at a time', () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 40 }), (steps) => {
        const program = build(steps);
        const runs = [run(1), run(2), run(3)];
        const seen = new Map<string, Float64Array[]>();
        const batch = evaluatePlainRuns(program, runs, { keep: false, onValue: (name, vs) => seen.set(name, vs.map((v) => Float64Array.from(v))) });
        expect(batch.values.size).toBe(0);
        runs.forEach((r, k) => {
          const one = evaluatePlain(program, r);
          for (const [name, v] of one.values) expect(seen.get(name)![k], name).toEqual(v);
          for (const [t, v] of one.outputs) expect(batch.outputs.get(t)![k], t).toEqual(v);
        });
      }),
      { numRuns: 60, seed: 7 },
    );
  });

  it('gives every value its max |x| over the slots of all runs, in streaming mode too, as maxAbs finds it', () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 40 }), fc.boolean(), (steps, keep) => {
        const program = build(steps);
        const runs = [run(1), run(2), run(3)];
        const expected = new Map<string, number>();
        const got = new Map<string, number>();
        evaluatePlainRuns(program, runs, {
          keep,
          onValue: (name, vs) => expected.set(name, Math.max(...vs.map(maxAbs))),
          onMaxAbs: (name, m) => got.set(name, m),
        });
        expect(got.size).toBe(expected.size);
        for (const [name, m] of expected) expect(got.get(name), name).toBe(m);
      }),
      { numRuns: 60, seed: 11 },
    );
  });

  it('a NaN slot makes the max |x| NaN, as maxAbs, and it stays NaN through later values', () => {
    const b = new FheBuilder('t', SLOTS);
    const x = b.input('x', LAYOUT);
    const big = b.mul(b.mul(x, x), b.mul(x, x)); // inf where |x| is huge
    const nan = b.sub(big, big); // inf - inf
    const y = b.add(b.rotate(nan, 3), x);
    b.output('y', y, LAYOUT);
    const got = new Map<string, number>();
    evaluatePlainRuns(b.build(), [{ x: Array.from({ length: 16 }, (_, i) => (i === 5 ? 1e100 : i)) }], { onMaxAbs: (name, m) => got.set(name, m) });
    expect(got.get(big.name)).toBe(Infinity);
    expect(got.get(nan.name)).toBeNaN();
    expect(got.get(y.name)).toBeNaN();
  });

  it('reuses storage: a long chain of additions allocates a bounded number of vectors', () => {
    const b = new FheBuilder('t', SLOTS);
    let v = b.input('x', LAYOUT);
    for (let i = 0; i < 500; i++) v = b.add(v, b.rotate(v, 1));
    b.output('y', v, LAYOUT);
    const distinct = new Set<Float64Array>();
    evaluatePlainRuns(b.build(), [run(1)], { keep: false, onValue: (_, vs) => distinct.add(vs[0]!) });
    expect(distinct.size).toBeLessThan(6);
  });
});
