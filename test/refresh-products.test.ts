// A ct x ct product that only refreshes read is refreshed as it is (manage-scales refreshProducts):
// size 3 at its own level and scale Delta_l^2, no relinearization or rescale on the evaluator. The
// mask is then a size-3 encryption with the client's product key (runtime/seal/zero-encryptor.ts),
// which re-randomizes the third component too, since c2 = a1 b1 would show the key holder products
// of its own encryptions' c1 and the weights. Checked here: the managed program, the priced rule (in
// process yes, 100 Mbit/s no), the exact scale ratios the key holder's lift needs, the product key,
// SEAL round trips (masks inline, made ahead, made by the mask thread) with c2 replaced, the key
// holder's schedule, and whole programs on SEAL and the simulator against float64.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultCostTable, parseLink, withLink } from '../ir/ckks/cost-table.js';
import { fheChain, makeParameters, parametersId, topLevel } from '../ir/ckks/params.js';
import { FheBuilder, type SlotLayout } from '../ir/fhe/index.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { refreshProductsRule } from '../passes/fhe/manage/refresh-products.js';
import { runFhePipeline, unitOf } from '../passes/index.js';
import type { CkksClient, CkksEvaluator, CkksHandle } from '../runtime/backend.js';
import { runProgram } from '../runtime/ckks/execute.js';
import { unwrapCiphertext } from '../runtime/ckks/wire.js';
import { IntegerMask } from '../runtime/refresh/integer-mask.js';
import { RefreshKeyHolder } from '../runtime/refresh/key-holder.js';
import { roundScaled, scaleRatio } from '../runtime/refresh/mask.js';
import { decodeRefreshRequest } from '../runtime/refresh/messages.js';
import { MaskedRefresher } from '../runtime/refresh/refresher.js';
import { refreshPointsOf, RefreshScheduleGuard } from '../runtime/refresh/schedule.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { makeSimBackend } from '../runtime/sim/backend.js';
import { sealPair, type SealPair } from './helpers/seal-pair.js';

const params = makeParameters({ ringDegree: 8192, bitSizes: [60, 40, 40, 60], scale: 2 ** 40 });
const slots = params.ringDegree / 2;
const top = topLevel(params);
const L: SlotLayout = { length: slots, tokens: 1, stride: slots, period: slots, copies: 1 };
const xs = Float64Array.from({ length: slots }, (_, i) => 0.9 * Math.sin(0.37 * i));
const ys = Float64Array.from({ length: slots }, (_, i) => 0.8 * Math.cos(0.11 * i));
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(b).reduce((m, x, i) => Math.max(m, Math.abs(a[i]! - x)), 0);

/** y = (x^2 refreshed)^2 + (x^2 refreshed) * x, the product x^2 read by the refresh only, or by the refresh and an addition. */
function squares(shared: boolean, refreshProducts: boolean) {
  const b = new FheBuilder('squares', slots);
  const x = b.input('x', L);
  const x2 = b.mul(x, x);
  const r = b.refresh(x2);
  let y = b.add(b.mul(r, r), b.mul(r, b.refresh(x)));
  if (shared) y = b.add(y, x2);
  b.output('y', y, L);
  return manageScales(b.build(), { chain: fheChain(params), topScale: params.scale, inputLevel: top, refreshProducts });
}
const squaresRef = (shared: boolean) => xs.map((x) => x ** 4 + x ** 3 + (shared ? x ** 2 : 0));

describe('manage-scales: products refreshed as they are', () => {
  it('refreshes a product only refreshes read at size 3, unrescaled; relinearizes and rescales it otherwise', () => {
    const count = (p: ReturnType<typeof squares>, kind: string) => p.ops.filter((op) => op.kind === kind).length;
    const on = squares(false, true);
    const off = squares(false, false);
    const sizes = (p: ReturnType<typeof squares>) => p.ops.filter((op) => op.kind === 'refresh').map((op) => [op.args[0]!.type.level, op.args[0]!.type.kind === 'ct' ? op.args[0]!.type.size : 0]);
    expect(sizes(off)).toEqual([[top - 1, 2], [top, 2]]);
    expect(sizes(on)).toEqual([[top, 3], [top, 2]]);
    expect(on.ops.find((op) => op.kind === 'refresh')!.args[0]!.type.scale).toBe(params.scale ** 2);
    expect(count(off, 'relinearize') - count(on, 'relinearize')).toBe(1);
    expect(count(off, 'rescale') - count(on, 'rescale')).toBe(1);
    // Read by an addition too: relinearized and rescaled once for both, as before.
    expect(sizes(squares(true, true))).toEqual([[top - 1, 2], [top, 2]]);
  });

  it('prices where: in process and at 1 Gbit/s yes, at 100 Mbit/s no (the bigger request costs more than the key switch saved)', () => {
    const rule = (link?: string) => refreshProductsRule(link ? withLink(defaultCostTable(), parseLink(link)) : defaultCostTable(), 16384, 3);
    expect([1, 2, 3].map(rule())).toEqual([true, true, true]);
    expect([1, 2, 3].map(rule('rtt=1ms,bandwidth=1Gbit'))).toEqual([true, true, true]);
    expect([1, 2, 3].map(rule('rtt=50ms,bandwidth=100Mbit'))).toEqual([false, false, false]);
    expect(rule()(0)).toBe(false);
  });
});

describe('the manage-scales pass reads the link select-parameters priced with', () => {
  it('refreshes x^8 as the last squaring leaves it in process, relinearized and rescaled over 100 Mbit/s, as told with always / never', () => {
    const sizes = (attrs: Record<string, string | number>, option = '') => {
      const b = new FheBuilder('poly', 8192);
      const layout = { length: 4, tokens: 1, stride: 8192, period: 8192, copies: 1 };
      let y = b.input('x', layout);
      for (let i = 0; i < 3; i++) y = b.mul(y, y);
      b.output('y', b.mulConst(y, { kind: 'splat', value: 0.5 }), layout);
      const unit = unitOf(b.build());
      unit.program.attributes = { 'ckks.ring_degree': 16384, 'ckks.bit_sizes': '60,40,40,40,60', 'ckks.scale': 2 ** 40, 'mgmt.input_level': 3, ...attrs };
      runFhePipeline(unit, `place-refresh{strategy=optimal,levels=3},manage-scales${option},verify`);
      return unit.program.ops.filter((op) => op.kind === 'refresh').map((op) => (op.args[0]!.type.kind === 'ct' ? op.args[0]!.type.size : 0));
    };
    expect(sizes({})).toEqual([3]);
    expect(sizes({ 'select.costs': 'default', 'select.link': '1/125000' })).toEqual([3]);
    expect(sizes({ 'select.costs': 'default', 'select.link': '50/12500' })).toEqual([2]);
    expect(sizes({ 'select.costs': 'default', 'select.link': '50/12500' }, '{refresh-products=always}')).toEqual([3]);
    expect(sizes({}, '{refresh-products=never}')).toEqual([2]);
    expect(() => sizes({}, '{refresh-products=sometimes}')).toThrow(/'priced', 'always' or 'never', got 'sometimes'/);
  });
});

describe('scale ratios: lowest terms, denominators below 2^62', () => {
  it('reduces exactly (an unrescaled product: 2^40 / 2^80 = 1 / 2^40) and approximates only beyond 2^62, within 2^-60', () => {
    expect(scaleRatio(2 ** 40, 2 ** 80)).toEqual({ num: 1n, den: 2n ** 40n });
    expect(scaleRatio(6, 4)).toEqual({ num: 3n, den: 2n });
    for (const [to, from] of [
      [2 ** 40, 2 ** 80 / 0.9294998457730431],
      [2 ** 40, 1.2089258196146292e24 / 0.37],
      [2 ** 30, 2 ** 90 + 2 ** 60],
    ] as const) {
      const r = scaleRatio(to, from);
      expect(r.den < 2n ** 62n).toBe(true);
      // |num/den - to/from| <= 2^-60 to/from, with to/from exact as doubles: compare through BigInts at 2^200.
      const exact = (BigInt(Math.round(to)) << 200n) / BigInt(from);
      const approx = (r.num << 200n) / r.den;
      const off = exact > approx ? exact - approx : approx - exact;
      expect(off * 2n ** 60n <= exact).toBe(true);
      // Both sides round with it alike: the mask comes off exactly.
      const y = 123456789012345678901234567890123n;
      expect(roundScaled(y + 5n, r) - roundScaled(5n, r) - roundScaled(y, r)).toBeGreaterThanOrEqual(-1n);
    }
  });
});

describe('on SEAL', () => {
  let pair: SealPair;
  let client: CkksClient;
  let ev: CkksEvaluator;
  beforeAll(async () => {
    pair = await sealPair(params);
    ({ client, ev } = pair);
  });
  afterAll(() => pair.dispose());

  it('gets a product key with the relinearization keys: size 3 at the top level, its third component uniform words', () => {
    const keys = client.evaluationKeys();
    expect(keys.productKey).toBeDefined();
    const words = 3 * (top + 1) * params.ringDegree;
    const key = new BigUint64Array(keys.productKey!.slice(keys.productKey!.length - 8 * words).buffer);
    // Per prime, the third component's words over q average 1/2 (uniform: standard deviation of the mean 0.0032).
    for (let j = 0; j <= top; j++) {
      const q = Number(params.primes[j]!);
      const third = key.subarray((2 * (top + 1) + j) * params.ringDegree, (2 * (top + 1) + j + 1) * params.ringDegree);
      const mean = third.reduce((m, w) => m + Number(w) / q, 0) / third.length;
      expect(Math.abs(mean - 0.5), `prime ${j}`).toBeLessThan(0.015);
    }
    // A new draw each time.
    expect(sharedThird(keys.productKey!, client.evaluationKeys().productKey!)).toBeLessThan(words / 1000);
  });

  it('gives no product key without relinearization keys (no product to refresh), and refuses a size-3 mask then', async () => {
    const plain = await sealBackend.createClient(params, { galoisSteps: [], relin: false });
    const keys = plain.evaluationKeys();
    expect(keys.productKey).toBeUndefined();
    const e = await sealBackend.createEvaluator(params, keys);
    const mask = IntegerMask.sample(params.ringDegree, 5n);
    expect(() => e.encryptIntegerPolynomials!([{ level: 1, scale: params.scale, poly: mask, size: 3 }])).toThrow(/needs the client's product key/);
    e.dispose();
    plain.dispose();
  });

  /** A refresher whose transport keeps every request's masked ciphertexts (the SEAL payloads). */
  function recording(evaluator: CkksEvaluator) {
    const holder = new RefreshKeyHolder(client, 'unchecked');
    const sent: Uint8Array[] = [];
    const transport = holder.transport();
    const refresher = new MaskedRefresher(evaluator, (request, idle) => {
      for (const it of decodeRefreshRequest(request).items) sent.push(unwrapCiphertext(it.ciphertext, 'seal', parametersId(params)).slice());
      return transport(request, idle);
    }, { mask: { valueBound: 1 } });
    return { refresher, sent };
  }
  /** The 8-byte words two ciphertexts' third components share (the last polynomial of each, 3 primes). */
  const sharedThird = (a: Uint8Array, b: Uint8Array) => {
    const words = 3 * params.ringDegree;
    const va = new BigUint64Array(a.slice(a.length - 8 * words).buffer);
    const vb = new BigUint64Array(b.slice(b.length - 8 * words).buffer);
    return va.reduce((n, w, i) => n + (w === vb[i] ? 1 : 0), 0);
  };

  it('refreshes a size-3 product exactly, its third component replaced by a uniform one, masks inline and made ahead', () => {
    const a = ev.loadCiphertext(client.encrypt(xs, top, params.scale));
    const b = ev.loadCiphertext(client.encrypt(ys, top, params.scale));
    const prod = ev.mul(a, b);
    expect([ev.sizeOf(prod), ev.levelOf(prod), ev.scaleOf(prod)]).toEqual([3, top, params.scale ** 2]);
    const want = xs.map((x, i) => x * ys[i]!);
    const product = unwrapCiphertext(ev.saveCiphertext(prod), 'seal', parametersId(params));
    const { refresher, sent } = recording(ev);
    const check = (h: CkksHandle) => {
      expect([ev.sizeOf(h), ev.levelOf(h), ev.scaleOf(h)]).toEqual([2, top, params.scale]);
      expect(maxDiff(client.decrypt(ev.saveCiphertext(h)), want)).toBeLessThan(1e-6);
      ev.free(h);
    };
    check(refresher.refresh(prod, params.scale, 'p'));
    expect(refresher.prepare([{ name: 'p', level: top, scale: params.scale ** 2, toScale: params.scale, size: 3 }])).toBe(1);
    check(refresher.refresh(prod, params.scale, 'p'));
    expect(refresher.preparedMasks.used).toBe(1);
    // A mask made for size 2 does not serve a size-3 product (nor the other way round): masked inline then.
    expect(refresher.prepare([{ name: 'p', level: top, scale: params.scale ** 2, toScale: params.scale }])).toBe(1);
    check(refresher.refresh(prod, params.scale, 'p'));
    expect(refresher.preparedMasks.used).toBe(1);
    refresher.discardPrepared();
    expect(sent).toHaveLength(3);
    const words = 3 * params.ringDegree;
    for (const s of sent) {
      // Size 3, and its c2 shares (by chance, 2^-40 each) no word with the product's, nor with another request's.
      expect(s.length).toBe(product.length);
      expect(sharedThird(s, product)).toBeLessThan(words / 1000);
    }
    expect(sharedThird(sent[0]!, sent[1]!)).toBeLessThan(words / 1000);
    expect(sharedThird(product, product)).toBe(words);
    for (const h of [a, b, prod]) ev.free(h);
  });

  it('makes size-3 masks on the mask thread too (with the product key)', async () => {
    const supplied = await sealBackend.createEvaluator(params, structuredClone(client.evaluationKeys()), { maskSupply: true });
    try {
      const a = supplied.loadCiphertext(client.encrypt(xs, top, params.scale));
      const prod = supplied.mul(a, a);
      const { refresher, sent } = recording(supplied);
      expect(refresher.prepare([{ name: 'p', level: top, scale: params.scale ** 2, toScale: params.scale, size: 3 }])).toBe(1);
      await new Promise((r) => setTimeout(r, 1500));
      const h = refresher.refresh(prod, params.scale, 'p');
      expect(refresher.preparedMasks).toEqual({ made: 0, supplied: 1, used: 1 });
      expect(maxDiff(client.decrypt(supplied.saveCiphertext(h)), xs.map((x) => x * x))).toBeLessThan(1e-6);
      expect(sharedThird(sent[0]!, unwrapCiphertext(supplied.saveCiphertext(prod), 'seal', parametersId(params)))).toBeLessThan((3 * params.ringDegree) / 1000);
      for (const x of [a, prod, h]) supplied.free(x);
    } finally {
      supplied.dispose();
    }
  });

  it('runs a program with products refreshed as they are: the float64 reference within 1e-6, one relinearization fewer', async () => {
    const ref = squaresRef(false);
    const run = async (refreshProducts: boolean) => {
      const program = squares(false, refreshProducts);
      const bounds = new Map(program.ops.filter((op) => op.kind === 'refresh').map((op) => [op.args[0]!.name, 2]));
      return runProgram(program, params, sealBackend, { x: xs }, { refreshBounds: bounds });
    };
    const [on, off] = [await run(true), await run(false)];
    expect(maxDiff(on.outputs.get('y')!.values, ref)).toBeLessThan(1e-6);
    expect(maxDiff(off.outputs.get('y')!.values, ref)).toBeLessThan(1e-6);
    expect(off.execution.ops.get('relinearize')!.count - on.execution.ops.get('relinearize')!.count).toBe(1);
    // The product's request is bigger: three polynomials at level 2 against two at level 1.
    expect(on.refresh!.bytesToKeyHolder).toBeGreaterThan(off.refresh!.bytesToKeyHolder);
  });
});

describe('the key holder\'s schedule', () => {
  it('puts the size in the refresh point and ends the session on the other size', () => {
    const program = squares(false, true);
    const points = refreshPointsOf(program, new Map(program.ops.filter((op) => op.kind === 'refresh').map((op) => [op.args[0]!.name, 2])));
    expect(points.map((p) => p.size ?? 2)).toEqual([3, 2]);
    const walk = (sizes: number[]) => {
      const guard = new RefreshScheduleGuard(() => points);
      guard.beginStep(0);
      points.forEach((p, i) => guard.acceptItem({ id: p.id, kind: 'refresh', level: p.level, scale: p.scale, size: sizes[i]!, toLevel: p.toLevel, toScale: p.toScale, slots }));
      guard.endStep();
    };
    expect(() => walk([3, 2])).not.toThrow();
    expect(() => walk([2, 2])).toThrow(/as a ciphertext of 2 polynomials, the plan has 3/);
    expect(() => walk([3, 3])).toThrow(/as a ciphertext of 3 polynomials, the plan has 2/);
  });
});

describe('on the simulator', () => {
  it('runs the same program within 1e-6 of float64 (its mask adds the key switch\'s error)', async () => {
    const program = squares(false, true);
    const bounds = new Map(program.ops.filter((op) => op.kind === 'refresh').map((op) => [op.args[0]!.name, 2]));
    const out = await runProgram(program, params, makeSimBackend(3), { x: xs }, { refreshBounds: bounds });
    expect(maxDiff(out.outputs.get('y')!.values, squaresRef(false))).toBeLessThan(1e-6);
    // The two products of the sum share one relinearization; x^2 has none.
    expect(out.execution.ops.get('relinearize')!.count).toBe(1);
  });
});
