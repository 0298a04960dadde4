// A splat constant product that is the only reader of a refreshed value is folded into the refresh
// (passes/fhe/refresh/refresh-fold.ts): `refresh %x times c` spends no level. The placement then needs
// fewer refreshes, the program computes the same values, the key holder's schedule carries the masked
// scale (the operand's over c) and bound (c times the operand's), and SEAL, the simulator and the
// evaluation workers give c x back.
import { describe, expect, it } from 'vitest';
import { FheBuilder, type FheProgram } from '../ir/fhe/index.js';
import { evaluatePlain } from '../ir/fhe/plain-eval.js';
import { fheChain, makeParameters, topLevel } from '../ir/ckks/params.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { placeRefreshes } from '../passes/fhe/refresh/refresh-placement.js';
import { refreshedValues } from '../passes/fhe/refresh/refresh-bounds.js';
import type { CkksBackend, CkksEvaluator, CkksHandle } from '../runtime/backend.js';
import { redeclareForFactors } from '../runtime/refresh/redeclare.js';
import { encryptInputs, executeProgram, keyRequestFor, runProgram } from '../runtime/ckks/execute.js';
import { RefreshKeyHolder } from '../runtime/refresh/key-holder.js';
import { MaskedRefresher } from '../runtime/refresh/refresher.js';
import { refreshPointsOf, RefreshScheduleGuard } from '../runtime/refresh/schedule.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { makeSimBackend } from '../runtime/sim/backend.js';
import { bruteForceRefreshes } from './helpers/refresh-brute-force.js';

const params = makeParameters({ ringDegree: 8192, bitSizes: [60, 40, 40, 60], scale: 2 ** 40 });
const slots = params.ringDegree / 2;
const top = topLevel(params);
const xs = Float64Array.from({ length: slots }, (_, i) => 0.9 * Math.sin(0.37 * i));
const ALPHA = 0.3;
const BETA = 0.25;

/** s = x^2 + rot(x^2), then t = ALPHA s + BETA (an affine map that opens a polynomial), then t^2: 2 levels before t^2. */
function sumThenAffine(alpha = ALPHA): FheProgram {
  const l = { length: slots, tokens: 1, stride: slots, period: slots, copies: 1 };
  const b = new FheBuilder('sum-then-affine', slots);
  const x = b.input('x', l);
  const sq = b.mul(x, x);
  const s = b.add(sq, b.rotate(sq, 1));
  const t = b.addConst(b.mulConst(s, { kind: 'splat', value: alpha }, 'alpha'), { kind: 'splat', value: BETA }, 'beta');
  const t2 = b.mul(t, t);
  b.output('y', b.mul(t2, t), l);
  return b.build();
}

const want = xs.map((v, i) => {
  const s = v * v + xs[(i + 1) % slots]! ** 2;
  const t = ALPHA * s + BETA;
  return t * t * t;
});

const rmsError = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let e = 0;
  for (let i = 0; i < a.length; i++) e += (a[i]! - b[i]!) ** 2;
  return Math.sqrt(e / a.length);
};

describe('constant products folded into refreshes', () => {
  // One level between refreshes (refreshes at level 1 of the 2-level chain).
  const levels = top - 1;
  const program = sumThenAffine();
  const folded = placeRefreshes(program, { levels });
  const plain = placeRefreshes(program, { levels, fold: false });

  it('saves a refresh: the product by ALPHA rides on the refresh of the sum', () => {
    expect(bruteForceRefreshes(program, levels)).toBe(plain.count);
    expect(plain.count).toBe(3);
    expect(folded.count).toBe(2);
    const refreshes = folded.program.ops.filter((op) => op.kind === 'refresh');
    expect(refreshes.map((op) => op.factor)).toContain(ALPHA);
    expect(folded.program.ops.some((op) => op.kind === 'mul_plain')).toBe(false);
    // The same values either way, slot for slot.
    const a = evaluatePlain(folded.program, { x: xs }).outputs.get('y')!;
    const b = evaluatePlain(plain.program, { x: xs }).outputs.get('y')!;
    expect(rmsError(a, b)).toBeLessThan(1e-12);
    expect(rmsError(a, want)).toBeLessThan(1e-12);
    // A negative constant is not a scale: it stays a product.
    const negative = placeRefreshes(sumThenAffine(-ALPHA), { levels });
    expect(negative.count).toBe(3);
    expect(negative.program.ops.some((op) => op.factor !== undefined)).toBe(false);
  });

  const managed = manageScales(folded.program, { chain: fheChain(params), topScale: params.scale, inputLevel: top });
  const op = managed.ops.find((o) => o.kind === 'refresh' && o.factor !== undefined)!;
  // Bounds at the masked scale: the refresh with a factor masks ALPHA s, |s| <= 2 * 0.81.
  const bounds = new Map(refreshedValues(managed).map((v) => [v, v === op.args[0]!.name ? ALPHA * 2 : 3]));

  it("the schedule sends the folded refresh at the operand's scale over its factor", () => {
    const points = refreshPointsOf(managed, bounds);
    const p = points.find((q) => q.id === op.args[0]!.name)!;
    expect(p.scale).toBe(op.args[0]!.type.scale! / ALPHA);
    expect(p.bound).toBeCloseTo(ALPHA * 2, 12);
    expect(p.toScale).toBe(params.scale);
  });

  for (const [name, backend] of [['seal', sealBackend], ['sim', makeSimBackend(3)]] as [string, CkksBackend][]) {
    it(`${name}: gives ALPHA s back through a key holder that checks every request against the schedule`, async () => {
      const client = await backend.createClient(params, keyRequestFor(managed));
      const ev = await backend.createEvaluator(params, client.evaluationKeys());
      const guard = new RefreshScheduleGuard((step) => (step === 0 ? refreshPointsOf(managed, bounds) : []));
      guard.beginStep(0);
      const holder = new RefreshKeyHolder(client, guard);
      const refresher = new MaskedRefresher(ev, (req) => holder.handle(req), { mask: { bounds } });
      const run = executeProgram(managed, ev, encryptInputs(managed, client, { x: xs }), { refresher });
      expect(() => guard.endStep()).not.toThrow();
      expect(holder.stats.ciphertexts).toBe(2);
      const y = client.decrypt(run.outputs.get('y')!);
      expect(rmsError(y.subarray(0, slots), want)).toBeLessThan(1e-5);
    });
  }

  it('two evaluation workers mask the folded refresh the same way (seal)', async () => {
    const run = await runProgram(managed, params, sealBackend, { x: xs }, { refreshBounds: bounds, workers: 2 });
    expect(rmsError(run.outputs.get('y')!.values, want)).toBeLessThan(1e-5);
    expect(run.refresh!.ciphertexts).toBe(2);
  });
});

describe('redeclareForFactors (the one place folded refreshes get their masked-scale copies)', () => {
  /** An evaluator double that records copies and frees; its second withScale fails when asked. */
  function recorder(failOnCopy?: number) {
    const freed: string[] = [];
    const copies: [string, number][] = [];
    const ev = {
      scaleOf: (h: CkksHandle) => Number((h as unknown as { scale: number }).scale),
      withScale: (h: CkksHandle, scale: number) => {
        if (copies.length + 1 === failOnCopy) throw new Error('copy failed');
        const name = `${(h as unknown as { name: string }).name}'`;
        copies.push([name, scale]);
        return { name, scale } as unknown as CkksHandle;
      },
      free: (h: CkksHandle) => freed.push((h as unknown as { name: string }).name),
    } as unknown as CkksEvaluator;
    return { ev, freed, copies };
  }
  const ct = (name: string, scale: number) => ({ name, scale }) as unknown as CkksHandle;

  it('copies only the ciphertexts with a factor, at scale / factor, and frees only the copies', () => {
    const { ev, freed, copies } = recorder();
    const a = ct('a', 2 ** 40);
    const r = redeclareForFactors(ev, [{ ct: a, factor: undefined }, { ct: ct('b', 2 ** 40), factor: 0.5 }, { ct: ct('c', 2 ** 30), factor: 1 }]);
    expect(r.cts[0]).toBe(a);
    expect(copies).toEqual([["b'", 2 ** 41]]);
    r.free();
    expect(freed).toEqual(["b'"]);
    r.free();
    expect(freed).toEqual(["b'"]);
  });

  it('frees the copies already made when a later one fails', () => {
    const { ev, freed } = recorder(2);
    expect(() => redeclareForFactors(ev, [{ ct: ct('a', 1), factor: 2 }, { ct: ct('b', 1), factor: 3 }])).toThrow('copy failed');
    expect(freed).toEqual(["a'"]);
  });
});
