// Per-value refresh floors: each value keeps to the lowest level its own refresh mask (or cache carry)
// fits, instead of one floor for the whole plan (passes/fhe/refresh-graph.ts limits,
// compiler/model-parameters.ts modelFloors). The placements stay optimal under the per-value limits
// (brute force), greedy stays feasible, scale management puts every refreshed value at or above its
// floor, and a model's floors follow its bounds: r(B) for what may be refreshed, r(B) + 1 for a carried
// cache output, 0 for the logits.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FheBuilder, verifyFhe, type FheProgram, type FheValue } from '../ir/fhe/index.js';
import { makeParameters } from '../ir/ckks/params.js';
import { coeffModulusPrimes } from '../ir/ckks/primes.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { placeRefreshesGreedy } from '../passes/fhe/refresh/refresh-greedy.js';
import { depthsWith, isFeasible, levelGraph } from '../passes/fhe/refresh/refresh-graph.js';
import { placeRefreshes } from '../passes/fhe/refresh/refresh-placement.js';
import { searchRefreshes } from '../passes/fhe/refresh/refresh-search.js';
import { modelFloors } from '../compiler/model-parameters.js';
import { minRefreshLevel } from '../runtime/refresh/mask.js';
import { bruteForceRefreshes } from './helpers/refresh-brute-force.js';
import { runFhePipeline } from '../passes/fhe/pipeline/run.js';
import { uniformFloors, unitOf, type ValueFloors } from '../passes/fhe/pipeline/unit.js';

const SLOTS = 8;
/** Real primes of a [60, 40 x 4] chain; the types only need their values. */
const PRIMES = coeffModulusPrimes(8192, [60, 40, 40, 40, 40, 60]).slice(0, -1);
const layout = { length: SLOTS, tokens: 1, stride: SLOTS, period: SLOTS, copies: 1 };

type Step = { op: 'mul' | 'add'; a: number; b: number } | { op: 'mul_plain' | 'rotate'; a: number };
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('mul' as const), a: fc.nat(), b: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('add' as const), a: fc.nat(), b: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constantFrom('mul_plain' as const, 'rotate' as const), a: fc.nat() }) },
);

/** `constants`: rotations become additions of a constant (add_plain) every other time. */
function randomProgram(steps: Step[], constants = false): FheProgram {
  const b = new FheBuilder('random', SLOTS);
  let k = 0;
  const pool: FheValue[] = [b.input('x', layout)];
  for (const s of steps) {
    const x = pool[s.a % pool.length]!;
    if (s.op === 'mul' || s.op === 'add') {
      const y = pool[s.b % pool.length]!;
      pool.push(s.op === 'mul' ? b.mul(x, y) : b.add(x, y));
    } else if (s.op === 'mul_plain') pool.push(b.mulConst(x, { kind: 'splat', value: 0.5 }));
    else pool.push(constants && k++ % 2 === 1 ? b.addConst(x, { kind: 'splat', value: 0.25 }) : b.rotate(x, 1));
  }
  b.output('y', pool[pool.length - 1]!, layout);
  return b.build();
}

const bruteForce = bruteForceRefreshes;

/** x^(2^k) by repeated squaring: one level per square. */
function squarings(k: number, slots = SLOTS): FheProgram {
  const b = new FheBuilder('sq', slots);
  const l = { ...layout, length: slots, stride: slots, period: slots };
  let x: FheValue = b.input('x', l);
  for (let i = 0; i < k; i++) x = b.mul(x, x);
  b.output('y', x, l);
  return b.build();
}

describe('per-value refresh floors', () => {
  it('the optimal placement equals brute force under random per-value floors, greedy stays feasible, and managed refreshes sit at or above their floors', () => {
    let cases = 0;
    let helped = 0;
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 12 }), fc.integer({ min: 2, max: 4 }), fc.array(fc.nat(2), { minLength: 16, maxLength: 16 }), (steps, levels, raw) => {
        const program = randomProgram(steps);
        const names = levelGraph(program, levels).names;
        if (names.length > 14) return;
        // Floors below the top; the input sits at the top whatever its floor.
        const floors = new Map(names.map((n, i) => [n, Math.min(raw[i]!, levels - 1)]));
        const floor = (n: string) => floors.get(n)!;
        const best = bruteForce(program, levels, floor);
        let greedy;
        try {
          greedy = placeRefreshesGreedy(program, levels, floor);
        } catch {
          // Some product has no level above its floor: nothing is feasible.
          expect(best).toBeUndefined();
          return;
        }
        const optimal = placeRefreshes(program, { levels, floor, fold: false });
        expect(optimal.exact).toBe(true);
        expect(optimal.count).toBe(best);
        expect(greedy.refreshed.length).toBeGreaterThanOrEqual(optimal.count);
        const g = levelGraph(program, levels, floor);
        const index = new Map(g.names.map((n, i) => [n, i]));
        expect(isFeasible(g, new Set(greedy.refreshed.map((n) => index.get(n)!)))).toBe(true);
        // A uniform floor (the largest) never needs fewer refreshes than the per-value floors.
        const top = Math.max(...floors.values());
        const uniform = bruteForce(program, levels, () => top);
        if (uniform !== undefined) {
          expect(optimal.count).toBeLessThanOrEqual(uniform);
          if (optimal.count < uniform) helped++;
        }
        // Scale management with the inputs at the top puts each refreshed value at or above its floor.
        const chain = { ringDegree: 2 * SLOTS, primes: PRIMES.slice(0, levels + 1) };
        const managed = manageScales(optimal.program, { chain, topScale: 2 ** 40, inputLevel: levels });
        verifyFhe(managed, { managed: true });
        const refreshArgs = managed.ops.filter((op) => op.kind === 'refresh').map((op) => op.args[0]!.type.level!);
        expect(refreshArgs.length).toBe(optimal.refreshed.length);
        optimal.refreshed.forEach((n, i) => expect(refreshArgs[i]).toBeGreaterThanOrEqual(floor(n)));
        cases++;
      }),
      { numRuns: 250, seed: 15 },
    );
    expect(cases).toBeGreaterThan(100);
    // Not trivial: per-value floors save refreshes on some of these programs.
    expect(helped).toBeGreaterThan(5);
  });

  it('the search alone (without the greedy placement it carries along) reaches the optimum under per-value floors, constant additions included', () => {
    // A value read only by a zero-weight op with a higher floor (a sum read by a constant addition whose
    // bound needs a higher refresh level) must stay a candidate: only refreshing it keeps that op within
    // its limit. The search used to drop it, lose every feasible state, and fall back on the greedy
    // placement's (with refreshes of values already at the top level).
    let lostBefore = 0;
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 11 }), fc.integer({ min: 2, max: 3 }), fc.array(fc.nat(2), { minLength: 16, maxLength: 16 }), (steps, levels, raw) => {
        const program = randomProgram(steps, true);
        const g = levelGraph(program, levels);
        if (g.names.length > 14) return;
        const floors = new Map(g.names.map((n, i) => [n, Math.min(raw[i]!, levels - 1)]));
        const floor = (n: string) => floors.get(n)!;
        const best = bruteForce(program, levels, floor);
        if (best === undefined) return;
        const gf = levelGraph(program, levels, floor);
        const alone = searchRefreshes(gf, { beam: 1_000_000 });
        expect(alone.exact).toBe(true);
        expect(isFeasible(gf, alone.refreshed)).toBe(true);
        expect(alone.refreshed.size).toBe(best);
        // The old rule: a value read by one zero-weight op was never a candidate, whatever the floors.
        if (gf.names.some((_, v) => gf.consumers[v]!.length === 1 && gf.weight[gf.consumers[v]![0]!] === 0 && gf.limit[gf.consumers[v]![0]!]! < gf.limit[v]!)) lostBefore++;
      }),
      { numRuns: 300, seed: 7 },
    );
    // The case the fix is about occurs among these programs.
    expect(lostBefore).toBeGreaterThan(20);
  });

  it('a value nothing reads may sink below the floor: x^(2^7) on 4 levels needs 2 refreshes with floor 2 for read values and 0 for the output, 3 with a uniform floor of 2', () => {
    const program = squarings(7);
    const names = levelGraph(program, 4).names;
    const output = names[names.length - 1]!;
    // Depths 1, 2 | 1, 2 | 1, 2, 3: the last square lands at level 1, below the read values' floor 2.
    expect(placeRefreshes(program, { levels: 4, floor: (n) => (n === output ? 0 : 2) }).count).toBe(2);
    expect(placeRefreshes(program, { levels: 4, floor: () => 2 }).count).toBe(3);
    // Floor 1: depths 1, 2, 3 | 1, 2, 3, 4 against 1, 2, 3 | 1, 2, 3 | 1.
    expect(placeRefreshes(program, { levels: 4, floor: (n) => (n === output ? 0 : 1) }).count).toBe(1);
    expect(placeRefreshes(program, { levels: 4, floor: () => 1 }).count).toBe(2);
    expect(placeRefreshesGreedy(program, 4, (n) => (n === output ? 0 : 1)).refreshed.length).toBe(1);
  });

  it('modelFloors: r(B) for read values, r(B) + 1 for carried cache outputs, 0 for the logits, and a refusal where a product cannot sit above its floor', () => {
    const params = makeParameters({ ringDegree: 16384, bitSizes: [60, 40, 40, 40, 40, 60], scale: 2 ** 40 });
    const b = new FheBuilder('model', SLOTS);
    const x = b.input('x', layout);
    const small = b.mul(x, x);
    const large = b.mulConst(small, { kind: 'splat', value: 1000 });
    const cache = b.add(large, x);
    const logits = b.mul(large, small);
    b.output('present', cache, layout);
    b.output('logits', logits, layout);
    const program = b.build();
    const bounds = new Map([
      [x.name, 1],
      [small.name, 1],
      [large.name, 1000],
      [cache.name, 1001],
      [logits.name, 1000],
    ]);
    const f = modelFloors(program, params, { bounds, carried: new Set([cache.name]) });
    if ('refused' in f) throw new Error(f.refused);
    const r = (bound: number) => minRefreshLevel(params, params.scale, bound, 40);
    // At N=16384 a 40-bit mask for |x| <= 1 fits level 1, for |x| <= 1000 level 2 (log2(2^41 * 1000) + 56 > 100 bits).
    expect([r(1), r(1000)]).toEqual([1, 2]);
    expect(f.floor(x.name)).toBe(1);
    expect(f.floor(small.name)).toBe(1);
    expect(f.floor(large.name)).toBe(2);
    expect(f.floor(cache.name)).toBe(3);
    expect(f.floor(logits.name)).toBe(0);
    expect([f.lowest, f.highest]).toEqual([1, 2]);
    // On [60, 40, 40, 60] (top 2) the product `large` would need level 2, the top: out, with the bound named.
    const short = makeParameters({ ringDegree: 16384, bitSizes: [60, 40, 40, 60], scale: 2 ** 40 });
    const refused = modelFloors(program, short, { bounds, carried: new Set([cache.name]) });
    expect(refused).toEqual({ refused: expect.stringMatching(/40-bit refresh masks for bound 1\.00e\+3 need \d+ bits at the refresh level; this chain has 100 bits below the top/) });
    // Unrefreshed depths 0, 1, 2, 2, 3: the carried output (floor 3) may be 1 level deep, so `large` (floor 2,
    // depth 2: still refreshable) is refreshed, and the logits end at depth 2.
    expect(depthsWith(levelGraph(program, 4, f.floor), new Set())).toEqual([0, 1, 2, 2, 3]);
    const placed = placeRefreshes(program, { levels: 4, floor: f.floor });
    expect(placed.refreshed).toEqual([large.name]);
  });
});

describe('per-value floors through the FHE passes', () => {
  // The driver's RefreshFloor gives each value its own floor; select-parameters records the lowest as
  // mgmt.min_level and place-refresh keeps every value at its own floor under the chain's top level.
  const placedWith = (floors: ValueFloors): FheProgram => {
    // Textual IR runs at N = 2 x slots: 4096 slots for a secure N=8192 chain of 4 levels at a 25-bit scale.
    const unit = unitOf(squarings(7, 4096), { refreshFloor: () => floors });
    runFhePipeline(unit, 'select-parameters{ring-degree=8192,levels=4,scale-bits=25},place-refresh,manage-scales');
    return unit.program;
  };
  it('x^(2^7) on 4 levels: floor 2 for read values and 0 for the output takes 2 refreshes, a uniform floor of 2 takes 3', () => {
    const output = levelGraph(squarings(7, 4096), 4).names.at(-1)!;
    const perValue = placedWith({ floor: (n) => (n === output ? 0 : 2), lowest: 2, highest: 2 });
    expect(perValue.attributes?.['mgmt.refreshes']).toBe(2);
    expect(perValue.attributes?.['mgmt.min_level']).toBe(2);
    expect(perValue.attributes?.['mgmt.refresh_levels']).toBe(2);
    const refreshLevels = perValue.ops.filter((op) => op.kind === 'refresh').map((op) => op.args[0]!.type.level!);
    expect(Math.min(...refreshLevels)).toBeGreaterThanOrEqual(2);
    expect(placedWith(uniformFloors(2)).attributes?.['mgmt.refreshes']).toBe(3);
  });
});
