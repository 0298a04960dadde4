// Evaluation across worker threads (runtime/parallel/): on SEAL, two workers give the same bytes as
// executeProgram on one evaluator, for a program of independent branches (rotations, products, splat
// and dense constants) and for a refreshed program, whose refresh inputs must also be the same bytes
// (the second run replays the first run's key holder answers). Refreshes travel by rounds: one
// message per refresh dependency level, checked by the key holder's schedule.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FheBuilder, type FheProgram, type FheValue } from '../ir/fhe/index.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { placeRefreshes } from '../passes/fhe/refresh/refresh-placement.js';
import type { CkksClient, CkksEvaluator, CkksHandle, CkksRefresher } from '../runtime/backend.js';
import { decryptOutputs, encryptInputs, executeProgram, keyRequestFor, planRefresher } from '../runtime/ckks/execute.js';
import { fheChain, makeParameters, topLevel } from '../ir/ckks/params.js';
import { refreshStages } from '../runtime/refresh/rounds.js';
import { RefreshKeyHolder } from '../runtime/refresh/key-holder.js';
import { MaskedRefresher } from '../runtime/refresh/refresher.js';
import { refreshPointsOf, RefreshScheduleGuard } from '../runtime/refresh/schedule.js';
import { placeProgram } from '../runtime/parallel/placement.js';
import { WorkerPool } from '../runtime/parallel/pool.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { signComposition } from './helpers/sign-composition.js';

const params = makeParameters({ ringDegree: 8192, bitSizes: [60, 40, 40, 60], scale: 2 ** 40 });
const slots = params.ringDegree / 2;
const top = topLevel(params);
const layout = { length: slots, tokens: 1, stride: slots, period: slots, copies: 1 };
const xs = Float64Array.from({ length: slots }, (_, i) => 0.9 * Math.sin(0.37 * i));

/** sum_k c_k * rot(x, k)^2 + w . x: independent branches a list scheduler can spread. */
function branches(count: number): FheProgram {
  const b = new FheBuilder('branches', slots);
  const x = b.input('x', layout);
  let sum: FheValue | undefined;
  for (let k = 1; k <= count; k++) {
    const r = b.rotate(x, k);
    const term = b.mulConst(b.mul(r, r), { kind: 'splat', value: 0.25 * k });
    sum = sum ? b.add(sum, term) : term;
  }
  const w = Float64Array.from({ length: slots }, (_, i) => Math.cos(0.01 * i));
  sum = b.add(sum!, b.mulConst(b.mulConst(x, { kind: 'dense', values: w }), { kind: 'splat', value: 0.5 }));
  b.output('y', sum, layout);
  return manageScales(b.build(), { chain: fheChain(params), topScale: params.scale, inputLevel: top });
}

/** p(x) = 1.5 x - 0.5 x^3 composed `rounds` times, refreshed wherever the chain runs out. */
function refreshedComposition(rounds: number): FheProgram {
  const placed = placeRefreshes(signComposition(rounds, slots), { levels: top - 1 });
  return manageScales(placed.program, { chain: fheChain(params), topScale: params.scale, inputLevel: top });
}

/** Records each refresh's input and answer (by refreshed value), to be replayed. */
class Recording implements CkksRefresher {
  readonly calls = new Map<string, { input: Uint8Array; output: Uint8Array }>();
  rounds = 0;
  constructor(
    private readonly ev: CkksEvaluator,
    private readonly inner: CkksRefresher,
  ) {}
  refresh(ct: CkksHandle, scale: number, name?: string): CkksHandle {
    return this.refreshMany([{ ct, scale, name }])[0]!;
  }
  refreshMany(items: { ct: CkksHandle; scale: number; name?: string }[]): CkksHandle[] {
    this.rounds++;
    const out = this.inner.refreshMany!(items);
    items.forEach((it, i) => this.calls.set(it.name!, { input: this.ev.saveCiphertext(it.ct), output: this.ev.saveCiphertext(out[i]!) }));
    return out;
  }
}

/** Answers from a recording; each input must be the recorded bytes. */
class Replaying implements CkksRefresher {
  mismatches: string[] = [];
  rounds = 0;
  constructor(
    private readonly ev: CkksEvaluator,
    private readonly rec: Recording,
  ) {}
  refresh(ct: CkksHandle, scale: number, name?: string): CkksHandle {
    return this.refreshMany([{ ct, scale, name }])[0]!;
  }
  refreshMany(items: { ct: CkksHandle; scale: number; name?: string }[]): CkksHandle[] {
    this.rounds++;
    return items.map((it) => {
      const r = this.rec.calls.get(it.name!)!;
      if (!Buffer.from(this.ev.saveCiphertext(it.ct)).equals(Buffer.from(r.input))) this.mismatches.push(it.name!);
      return this.ev.loadCiphertext(r.output);
    });
  }
}

describe('evaluation workers on seal', () => {
  const wide = branches(6);
  const deep = refreshedComposition(5);
  let client: CkksClient;
  let ev: CkksEvaluator;
  let pool: WorkerPool;

  beforeAll(async () => {
    const a = keyRequestFor(wide);
    client = await sealBackend.createClient(params, { galoisSteps: a.galoisSteps, relin: true });
    const keys = client.evaluationKeys();
    ev = await sealBackend.createEvaluator(params, keys);
    pool = await WorkerPool.create(2, params, keys, { plaintextBudget: 64 * 2 ** 20 });
  }, 60_000);
  afterAll(async () => {
    await pool?.dispose();
    ev?.dispose();
    client?.dispose();
  });

  it('spreads independent branches over both workers', () => {
    const p = placeProgram(wide, 2);
    const busy = p.actions.map((stages) => stages.flat().filter((a) => a.do === 'op' && wide.ops[a.op]!.kind === 'rotate').length);
    expect(busy.every((n) => n > 0)).toBe(true);
    expect(p.balance).toBeLessThan(0.75);
  });

  it('gives the same bytes on 2 workers as on one evaluator', async () => {
    const inputs = encryptInputs(wide, client, { x: xs });
    const one = executeProgram(wide, ev, inputs);
    const two = await pool.run(wide, ev, inputs);
    expect(Buffer.from(two.outputs.get('y')!).equals(Buffer.from(one.outputs.get('y')!))).toBe(true);
    expect(two.parallel.moved.count).toBeGreaterThan(0);
    expect(two.parallel.busyMs.every((ms) => ms > 0)).toBe(true);
    expect(two.ops.get('rotate')!.count).toBe(6);
    // And the values are right.
    const y = decryptOutputs(wide, client, two.outputs).get('y')!.values;
    const want = xs.map((_, i) => {
      let s = 0.5 * Math.cos(0.01 * i) * xs[i]!;
      for (let k = 1; k <= 6; k++) s += 0.25 * k * xs[(i + k) % slots]! ** 2;
      return s;
    });
    expect(Math.max(...y.map((v, i) => Math.abs(v - want[i]!)))).toBeLessThan(1e-5);
  });

  it("keeps a run's plaintexts out of the workers' caches when asked (a prefill), same bytes", async () => {
    // A dense constant no other test encodes.
    const b = new FheBuilder('prefill-like', slots);
    const x = b.input('x', layout);
    const w = Float64Array.from({ length: slots }, (_, i) => Math.sin(0.003 * i + 0.7));
    b.output('y', b.add(b.rotate(x, 1), b.mulConst(x, { kind: 'dense', values: w })), layout);
    const program = manageScales(b.build(), { chain: fheChain(params), topScale: params.scale, inputLevel: top });
    const inputs = encryptInputs(program, client, { x: xs });
    const held = () => pool.plaintexts.reduce((n, p) => n + (p?.entries ?? 0), 0);
    const before = held();
    const uncached = await pool.run(program, ev, inputs, { cachePlaintexts: false });
    expect(held()).toBe(before);
    const cached = await pool.run(program, ev, inputs);
    expect(held()).toBeGreaterThan(before);
    expect(Buffer.from(cached.outputs.get('y')!).equals(Buffer.from(uncached.outputs.get('y')!))).toBe(true);
  });

  it('runs a refreshed program by rounds, same bytes as one evaluator, checked by the key holder', async () => {
    const rounds = refreshStages(deep);
    const refreshes = deep.ops.filter((op) => op.kind === 'refresh').length;
    expect(rounds.count).toBeLessThan(refreshes);
    const inputs = encryptInputs(deep, client, { x: xs });
    // One evaluator, the key holder checking every request against the plan's schedule.
    const checked = planRefresher(deep, client, ev, { mask: { valueBound: 1 } });
    const rec = new Recording(ev, checked.refresher!);
    const one = executeProgram(deep, ev, inputs, { refresher: rec });
    checked.finish();
    expect(checked.refresher!.traffic.roundTrips).toBe(rounds.count);
    expect(checked.refresher!.traffic.ciphertexts).toBe(refreshes);
    // Two workers, replaying those answers: every refresh input and the output are the same bytes.
    const replay = new Replaying(ev, rec);
    const two = await pool.run(deep, ev, inputs, { refresher: replay });
    expect(replay.mismatches).toEqual([]);
    expect(replay.rounds).toBe(rounds.count);
    expect(Buffer.from(two.outputs.get('y')!).equals(Buffer.from(one.outputs.get('y')!))).toBe(true);
    // Two workers against the live, checking key holder.
    const live = planRefresher(deep, client, ev, { mask: { valueBound: 1 } });
    const run = await pool.run(deep, ev, inputs, { refresher: live.refresher });
    live.finish();
    const want = xs.map((v) => [0, 1, 2, 3, 4].reduce((y) => 1.5 * y - 0.5 * y ** 3, v));
    const y = decryptOutputs(deep, client, run.outputs).get('y')!.values;
    // Waiting for each round's answers, the workers made the next round's masks (each its own exports'),
    // each used once: every refresh but the first round's.
    const masks = pool.masks.map((z) => z!);
    const made = masks.reduce((s, z) => s + z.made, 0);
    const firstRound = refreshStages(deep).stages[0]!.refreshes.length;
    const refreshed = deep.ops.filter((op) => op.kind === 'refresh').length;
    expect(made).toBe(refreshed - firstRound);
    expect(masks.reduce((s, z) => s + z.used, 0)).toBe(made);
    expect(Math.max(...y.map((v, i) => Math.abs(v - want[i]!)))).toBeLessThan(1e-5);
  }, 60_000);

  it('carries ciphertexts outside a program on the workers: slots moved, masked, refreshed, unmasked', async () => {
    // Destination u takes source u + 1 (even u) or u + 2 (odd u): two rotations; the third item keeps its slots.
    const map = Int32Array.from({ length: slots }, (_, u) => (u + (u % 2 ? 2 : 1)) % slots);
    const moved = (v: Float64Array) => Float64Array.from(map, (s) => v[s]!);
    const values = [xs, xs.map((v) => -0.5 * v), xs.map((v, i) => 0.3 * Math.cos(0.1 * i) + 0.1 * v)];
    const items = values.map((v, i) => ({ bytes: client.encrypt(v, top, params.scale), ...(i < 2 ? { map } : {}), level: top, scale: params.scale, bound: 1, point: `c${i}` }));
    const holder = new RefreshKeyHolder(client, 'unchecked');
    const refresher = new MaskedRefresher(ev, holder.transport(), { mask: { valueBound: 1 } });
    const seen: string[] = [];
    const fresh = await pool.carry(items, slots, refresher.hiding, (masked) => {
      for (const m of masked) seen.push(`${m.value}@${m.level} ${m.hidingBits}`);
      return refresher.exchangeMasked(masked);
    });
    // The moved items were masked one level down (the move costs a level), the other at the top.
    expect(seen).toEqual([`c0@${top - 1} 40`, `c1@${top - 1} 40`, `c2@${top} 40`]);
    expect(holder.stats).toMatchObject({ requests: 1, ciphertexts: 3 });
    fresh.forEach((bytes, i) => {
      const h = ev.loadCiphertext(bytes);
      expect(ev.levelOf(h)).toBe(top);
      expect(ev.scaleOf(h)).toBe(params.scale);
      ev.free(h);
      const want = i < 2 ? moved(values[i]!) : values[i]!;
      const got = client.decrypt(bytes);
      expect(Math.max(...want.map((v, k) => Math.abs(v - got[k]!))), `c${i}`).toBeLessThan(1e-6);
    });
  }, 60_000);

  it('waits for a key holder that answers asynchronously (a remote one), one message per round', async () => {
    const bounds = new Map(deep.ops.filter((op) => op.kind === 'refresh').map((op) => [op.args[0]!.name, 1]));
    const guard = new RefreshScheduleGuard(() => refreshPointsOf(deep, bounds));
    guard.beginStep(0);
    const holder = new RefreshKeyHolder(client, guard);
    const remote = async (request: Uint8Array): Promise<Uint8Array> => {
      await new Promise((r) => setTimeout(r, 1));
      return holder.handle(request);
    };
    const refresher = new MaskedRefresher(ev, remote, { mask: { bounds } });
    const inputs = encryptInputs(deep, client, { x: xs });
    // One thread cannot wait for it, and says so.
    const elsewhere = new RefreshKeyHolder(client, 'unchecked');
    const later = async (request: Uint8Array) => elsewhere.handle(request);
    expect(() => executeProgram(deep, ev, inputs, { refresher: new MaskedRefresher(ev, later, { mask: { bounds } }) })).toThrow(/answers asynchronously/);
    const run = await pool.run(deep, ev, encryptInputs(deep, client, { x: xs }), { refresher });
    expect(refresher.traffic.roundTrips).toBe(refreshStages(deep).count);
    const want = xs.map((v) => [0, 1, 2, 3, 4].reduce((y) => 1.5 * y - 0.5 * y ** 3, v));
    const y = decryptOutputs(deep, client, run.outputs).get('y')!.values;
    expect(Math.max(...y.map((v, i) => Math.abs(v - want[i]!)))).toBeLessThan(1e-5);
  }, 60_000);
});
