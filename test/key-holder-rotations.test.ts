// The key holder can return a refresh's fresh value rotated as well (refresh protocol 4): it holds the
// masked polynomial in NTT form and permutes it (runtime/seal/galois.ts), encrypting each copy anew, so
// the evaluator skips those rotations' key switches. Which rotations: the plan's rotate ops of a refresh
// result (runtime/refresh/rounds.ts refreshRotations), all or none per item, checked by the key holder's
// schedule. The evaluator unmasks each copy with its unmask rotated the same way (exact), with masks made
// inline and made ahead; the simulator's key holder makes none; a program run gives the same outputs with
// those rotate ops answered by the key holder.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fheChain, makeParameters, topLevel } from '../ir/ckks/params.js';
import { FheBuilder, type SlotLayout } from '../ir/fhe/index.js';
import { evalChebyshev, type ChebyshevPolynomial } from '../passes/fhe/approximate/chebyshev.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { placeRefreshes } from '../passes/fhe/refresh/refresh-placement.js';
import type { CkksClient, CkksEvaluator } from '../runtime/backend.js';
import { runProgram } from '../runtime/ckks/execute.js';
import { KEY_HOLDER_ROTATE } from '../runtime/ckks/program-runtime.js';
import { RefreshKeyHolder } from '../runtime/refresh/key-holder.js';
import { decodeRefreshRequest, encodeRefreshRequest } from '../runtime/refresh/messages.js';
import { MaskedRefresher } from '../runtime/refresh/refresher.js';
import { refreshRotations } from '../runtime/refresh/rounds.js';
import { refreshPointsOf, RefreshScheduleGuard } from '../runtime/refresh/schedule.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { makeSimBackend } from '../runtime/sim/backend.js';

const params = makeParameters({ ringDegree: 8192, bitSizes: [60, 40, 40, 60], scale: 2 ** 40 });
const slots = params.ringDegree / 2;
const top = topLevel(params);
const xs = Float64Array.from({ length: slots }, (_, i) => 0.9 * Math.sin(0.37 * i));
const rotated = (v: Float64Array, s: number) => Float64Array.from(v, (_, i) => v[(((i + s) % slots) + slots) % slots]!);
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);

/** 1.2 T1 - 0.2 T3 = 1.8 x - 0.8 x^3: keeps |x| <= 1.04 on [-1.04, 1.04]. */
const p: ChebyshevPolynomial = { coeffs: [0, 1.2, 0, -0.2], a: -1, b: 1 };
const cubic = (v: Float64Array) => v.map((x) => 1.8 * x - 0.8 * x ** 3);

/** The program's float64 reference. */
function reference(): Float64Array {
  let u = xs;
  for (let r = 0; r < 3; r++) u = cubic(u);
  const sum = u.map((x, i) => 0.25 * (x + rotated(u, 1)[i]! + rotated(u, 2)[i]! + rotated(u, 5)[i]!));
  return cubic(sum);
}

/**
 * x -> three cubic polynomials (refreshes placed by the pass), a refresh, the sum of its result's rotations
 * by 1, 2 and 5 (as a linear layer's baby steps read a refreshed input), a cubic of that.
 */
function rotatingProgram() {
  const L: SlotLayout = { length: slots, tokens: 1, stride: slots, period: slots, copies: 1 };
  const b = new FheBuilder('rotating', slots);
  let u = b.input('x', L);
  for (let r = 0; r < 3; r++) u = evalChebyshev(b, u, p).value;
  u = b.refresh(u);
  const s = b.add(b.add(u, b.rotate(u, 1)), b.add(b.rotate(u, 2), b.rotate(u, 5)));
  b.output('y', evalChebyshev(b, b.mulConst(s, { kind: 'splat', value: 0.25 }, 'quarter'), p).value, L);
  const placed = placeRefreshes(b.build(), { levels: top - 1 });
  return manageScales(placed.program, { chain: fheChain(params), topScale: params.scale, inputLevel: top });
}

describe('refresh protocol 4: rotation steps per item', () => {
  it('carries each item\'s steps, none when it asks for none, and refuses a truncated or version-3 request', () => {
    const ct = Uint8Array.from({ length: 40 }, (_, i) => i);
    const req = {
      id: 7,
      step: 2,
      items: [
        { point: 'a', ciphertext: ct, scale: 2 ** 40, bound: 3, maskBits: 12, rotations: [1, -3, 70000] },
        { point: 'b', ciphertext: ct, scale: 2 ** 30, bound: 1, maskBits: 0 },
      ],
    };
    const bytes = encodeRefreshRequest(req);
    const back = decodeRefreshRequest(bytes);
    expect(back.items[0]!.rotations).toEqual([1, -3, 70000]);
    expect(back.items[1]!.rotations).toBeUndefined();
    expect(Array.from(back.items[1]!.ciphertext)).toEqual(Array.from(ct));
    // 3 steps of 4 bytes more than the same request without them.
    expect(bytes.length - encodeRefreshRequest({ ...req, items: [{ ...req.items[0]!, rotations: [] }, req.items[1]!] }).length).toBe(12);
    const at = bytes.indexOf(0xfd); // inside -3's bytes (fd ff ff ff)
    expect(() => decodeRefreshRequest(bytes.slice(0, at))).toThrow(/truncated/);
    const v3 = bytes.slice();
    v3[4] = 3;
    expect(() => decodeRefreshRequest(v3)).toThrow(/protocol version 3, expected 4/);
  });
});

describe('the schedule: the plan\'s rotations of a refresh result, all or none', () => {
  const program = rotatingProgram();
  const rotations = refreshRotations(program);
  const bounds = new Map(program.ops.filter((op) => op.kind === 'refresh').map((op) => [op.args[0]!.name, 2]));
  const points = refreshPointsOf(program, bounds);

  it('finds the rotate ops of a refresh result and puts their steps in its refresh point', () => {
    // The rotations by 1, 2 and 5 all read one refreshed value.
    const lists = [...rotations.values()];
    expect(lists.map((l) => l.map((r) => r.step))).toEqual([[1, 2, 5]]);
    const [refreshOp] = [...rotations.keys()];
    for (const r of lists[0]!) expect(program.ops[r.op]).toMatchObject({ kind: 'rotate', step: r.step, args: [{ name: program.ops[refreshOp!]!.result!.name }] });
    const withSteps = points.filter((p) => p.rotations);
    expect(withSteps.map((p) => p.rotations)).toEqual([[1, 2, 5]]);
    expect(withSteps[0]!.id).toBe(program.ops[refreshOp!]!.args[0]!.name);
  });

  it('accepts the plan\'s steps or none, and ends the session on any other list', () => {
    const item = (p: (typeof points)[number], rotations?: number[]) => ({ id: p.id, kind: 'refresh' as const, level: p.level, scale: p.scale, size: 2, toLevel: p.toLevel, toScale: p.toScale, slots, ...(rotations ? { rotations } : {}) });
    const k = points.findIndex((p) => p.rotations);
    const walk = (ask: (i: number) => number[] | undefined) => {
      const guard = new RefreshScheduleGuard(() => points);
      guard.beginStep(0);
      points.forEach((p, i) => guard.acceptItem(item(p, ask(i))));
      guard.endStep();
    };
    expect(() => walk(() => undefined)).not.toThrow();
    expect(() => walk((i) => (i === k ? [1, 2, 5] : undefined))).not.toThrow();
    for (const [bad, why] of [
      [[1, 2], /rotated by \[1, 2\], the plan rotates it by \[1, 2, 5\]/],
      [[1, 2, 5, 7], /rotated by \[1, 2, 5, 7\]/],
      [[2, 1, 5], /rotated by \[2, 1, 5\]/],
    ] as const) {
      expect(() => walk((i) => (i === k ? [...bad] : undefined))).toThrow(why);
    }
    // A refresh point without rotations in the plan accepts none.
    const other = k === 0 ? 1 : 0;
    expect(() => walk((i) => (i === other ? [1] : undefined))).toThrow(/the plan rotates it by \[\]/);
  });
});

describe('key-holder rotations on SEAL', () => {
  let client: CkksClient;
  let ev: CkksEvaluator;
  beforeAll(async () => {
    client = await sealBackend.createClient(params, { galoisSteps: [], relin: true });
    ev = await sealBackend.createEvaluator(params, structuredClone(client.evaluationKeys()));
  });
  afterAll(() => {
    ev.dispose();
    client.dispose();
  });

  it('returns the fresh value and its rotations, each unmasked exactly, masks made inline or ahead', () => {
    const holder = new RefreshKeyHolder(client, 'unchecked');
    const refresher = new MaskedRefresher(ev, holder.transport(), { mask: { valueBound: 1 }, keyHolderRotations: true });
    expect(refresher.rotatesOnKeyHolder).toBe(true);
    const ct = ev.loadCiphertext(client.encrypt(xs, 1, params.scale));
    const steps = [1, 5, -2, 1000];
    const check = (out: ReturnType<MaskedRefresher['refreshRotated']>) => {
      expect(out).toHaveLength(1);
      expect(out[0]).toHaveLength(1 + steps.length);
      out[0]!.forEach((h, j) => {
        expect([ev.levelOf(h), ev.scaleOf(h)]).toEqual([top, params.scale]);
        expect(maxDiff(client.decrypt(ev.saveCiphertext(h)), j === 0 ? xs : rotated(xs, steps[j - 1]!))).toBeLessThan(1e-6);
        ev.free(h);
      });
    };
    check(refresher.refreshRotated([{ ct, scale: params.scale, name: 'x', rotations: steps }]));
    expect(refresher.prepare([{ name: 'x', level: 1, scale: params.scale, toScale: params.scale }])).toBe(1);
    check(refresher.refreshRotated([{ ct, scale: params.scale, name: 'x', rotations: steps }]));
    expect(refresher.preparedMasks.used).toBe(1);
    // One reply ciphertext per copy: the round with 4 rotations brings 5 fresh ciphertexts back.
    const before = refresher.traffic.bytesToEvaluator;
    ev.free(refresher.refreshMany([{ ct, scale: params.scale, name: 'x' }])[0]!);
    const one = refresher.traffic.bytesToEvaluator - before;
    expect(before / 2 / one).toBeGreaterThan(4.99);
    expect(before / 2 / one).toBeLessThan(5.01);
    // Off by default: then the refresher never asks.
    expect(new MaskedRefresher(ev, holder.transport(), { mask: { valueBound: 1 } }).rotatesOnKeyHolder).toBe(false);
    expect(() => new MaskedRefresher(ev, holder.transport(), { mask: { valueBound: 1 } }).refreshRotated([{ ct, scale: params.scale, name: 'x', rotations: [1] }])).toThrow(/without key-holder rotations/);
    ev.free(ct);
  });

  it('runs a program with the rotate ops of refresh results answered by the key holder: same outputs, fewer key switches', async () => {
    const program = rotatingProgram();
    const bounds = new Map(program.ops.filter((op) => op.kind === 'refresh').map((op) => [op.args[0]!.name, 2]));
    const answered = [...refreshRotations(program).values()].reduce((n, l) => n + l.length, 0);
    expect(answered).toBe(3);
    const run = (keyHolderRotations: boolean) => runProgram(program, params, sealBackend, { x: xs }, { refreshBounds: bounds, keyHolderRotations });
    const [withKh, without] = [await run(true), await run(false)];
    const y1 = withKh.outputs.get('y')!.values;
    const y0 = without.outputs.get('y')!.values;
    const ref = reference();
    expect(Math.max(...Array.from(ref).map(Math.abs))).toBeGreaterThan(0.5);
    expect(maxDiff(y0.slice(0, slots), ref)).toBeLessThan(1e-6);
    expect(maxDiff(y1.slice(0, slots), ref)).toBeLessThan(1e-6);
    expect(withKh.execution.ops.get(KEY_HOLDER_ROTATE)?.count).toBe(answered);
    expect(without.execution.ops.get(KEY_HOLDER_ROTATE)).toBeUndefined();
    expect(without.execution.ops.get('rotate')!.count - (withKh.execution.ops.get('rotate')?.count ?? 0)).toBe(answered);
    // The same rounds; the copies come back as fresh ciphertexts.
    expect(withKh.refresh!.roundTrips).toBe(without.refresh!.roundTrips);
    expect(withKh.refresh!.bytesToEvaluator).toBeGreaterThan(without.refresh!.bytesToEvaluator);
  });
});

describe('the simulator', () => {
  it('asks for no rotations (its evaluator cannot rotate an unmask) and its key holder refuses them', async () => {
    const sim = makeSimBackend(5);
    const client = await sim.createClient(params, { galoisSteps: [], relin: true });
    const ev = await sim.createEvaluator(params, client.evaluationKeys());
    expect(new MaskedRefresher(ev, new RefreshKeyHolder(client, 'unchecked').transport(), { mask: { valueBound: 1 }, keyHolderRotations: true }).rotatesOnKeyHolder).toBe(false);
    const target = { level: top, scale: params.scale, point: 'x', bound: 1, maskBits: 0, minHidingBits: 0, rotations: [1] };
    expect(() => client.refreshExact([{ ciphertext: client.encrypt(xs, 1, params.scale), target }])).toThrow(/asks for rotated copies, which the simulator's key holder does not make/);
  });
});
