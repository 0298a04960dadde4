// The encoded-plaintext cache shared by the steps of a generation (runtime/ckks/plaintext-cache.ts):
// on SEAL, runs through the cache decrypt to exactly the values of runs without it, also when a small
// budget makes it evict and bypass; the cache keeps within its budget, counted as SEAL's pool holds
// plaintexts (per level); content keys are hashed once per program and name content, not constants.

import { describe, expect, it } from 'vitest';
import { FheBuilder } from '../ir/fhe/index.js';
import type { FheProgram } from '../ir/fhe/types.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { decryptOutputs, encryptInputs, executeProgram, keyRequestFor } from '../runtime/ckks/execute.js';
import { constantKeys, defaultPlaintextBudget, PlaintextCache, plaintextBytes, WASM_HEAP_BYTES } from '../runtime/ckks/plaintext-cache.js';
import { fheChain, selectParameters } from '../ir/ckks/params.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { simBackend } from '../runtime/sim/backend.js';

const params = selectParameters({ depth: 2 });
const slots = params.ringDegree / 2;
const layout = { length: 8, tokens: 1, stride: slots, period: 8, copies: slots / 8 };

function dense(seed: number): Float64Array {
  return Float64Array.from({ length: slots }, (_, i) => Math.sin(seed * 7.1 + i * 0.37) / 2);
}

/** y = sum_i (x * w_i) * v + 0.25: `n` weight vectors at the top level, `v` one level down. */
function program(seeds: number[], name = 'p'): FheProgram {
  const b = new FheBuilder(name, slots);
  const x = b.input('x', layout);
  // Constant names differ between programs (`name` in the hint); contents may not.
  let acc = b.mulConst(x, { kind: 'dense', values: dense(seeds[0]!) }, `${name}w`);
  for (const s of seeds.slice(1)) acc = b.add(acc, b.mulConst(x, { kind: 'dense', values: dense(s) }, `${name}w`));
  const y = b.addConst(b.mulConst(acc, { kind: 'dense', values: dense(99) }, `${name}v`), { kind: 'splat', value: 0.25 });
  b.output('y', y, layout);
  return manageScales(b.build(), { chain: fheChain(params), topScale: params.scale });
}

/** Encodes of dense(seed) for each seed, all at the input level, in this order. */
function encodes(seeds: number[]): FheProgram {
  const b = new FheBuilder('e', slots);
  for (const s of seeds) b.output(`y${s}`, b.mulConst(b.input(`x${s}`, layout), { kind: 'dense', values: dense(s) }), layout);
  return manageScales(b.build(), { chain: fheChain(params), topScale: params.scale });
}

/** What executeProgram does with a cache, without the ciphertexts. */
function useCache(cache: PlaintextCache, p: FheProgram): void {
  cache.beginRun(p);
  const keys = constantKeys(p);
  for (const op of p.ops) {
    if (op.kind !== 'encode') continue;
    const c = p.constants.get(op.constant!)!;
    cache.encode(keys.get(c.name)!, op.result!.type.level!, op.result!.type.scale!, () => (c.data as { values: Float64Array }).values);
  }
}

const encodeLevels = (p: FheProgram) => new Set(p.ops.filter((o) => o.kind === 'encode').map((o) => o.result!.type.level!));

describe('plaintext cache', () => {
  it('on SEAL: decryptions with the cache equal those without, bit for bit, also when it evicts and bypasses', async () => {
    const A = program([1, 2, 3], 'a');
    const B = program([4, 5, 2], 'b');
    const client = await sealBackend.createClient(params, keyRequestFor(A));
    const ev = await sealBackend.createEvaluator(params, client.evaluationKeys());
    try {
      const x = encryptInputs(A, client, { x: [0.5, -1, 2, 0.25, 1.5, -0.75, 0.1, 3] });
      const run = (p: FheProgram, cache?: PlaintextCache) => decryptOutputs(p, client, executeProgram(p, ev, x, { plaintexts: cache }).outputs).get('y')!.values;
      const plainA = run(A);
      const plainB = run(B);
      expect(plainA.some((v) => v !== 0)).toBe(true);
      // Room for all: the second run of A is all hits (its four dense constants; the splat is not cached).
      const big = new PlaintextCache(ev, 2 ** 30);
      expect(run(A, big)).toEqual(plainA);
      const first = big.stats;
      expect(first).toMatchObject({ hits: 0, misses: 4, bypassed: 0, entries: 4 });
      expect(run(A, big)).toEqual(plainA);
      expect(big.stats).toMatchObject({ hits: 4, misses: 4 });
      // B shares a top-level weight (seed 2) and v with A: hits by content, not by constant name.
      expect(run(B, big)).toEqual(plainB);
      expect(big.stats).toMatchObject({ hits: 6, misses: 6 });
      big.dispose();
      // Room for two plaintexts at the top level: evictions and uncached encodes, same values.
      const top = Math.max(...encodeLevels(A));
      const small = new PlaintextCache(ev, 2 * plaintextBytes(params, top));
      for (const p of [A, B, A, B]) expect(run(p, small)).toEqual(p === A ? plainA : plainB);
      expect(small.stats.evictions).toBeGreaterThan(0);
      expect(small.stats.bypassed).toBeGreaterThan(0);
      expect(small.stats.reservedBytes).toBeLessThanOrEqual(small.budgetBytes);
      small.dispose();
    } finally {
      ev.dispose();
      client.dispose();
    }
  }, 60000);

  it('keeps within its budget: per level, least recently used first, never what the current run encodes', async () => {
    const ev = await simBackend.createEvaluator(params, (await simBackend.createClient(params, { galoisSteps: [], relin: false })).evaluationKeys());
    const levels = encodeLevels(encodes([1, 2]));
    expect(levels.size).toBe(1);
    const level = [...levels][0]!;
    const size = plaintextBytes(params, level);
    expect(size).toBe((level + 1) * params.ringDegree * 8);
    const cache = new PlaintextCache(ev, 3 * size);
    const use = (p: FheProgram) => useCache(cache, p);
    // Five constants into room for three: three kept, two used uncached (nothing of this run is evicted).
    use(encodes([1, 2, 3, 4, 5]));
    expect(cache.stats).toMatchObject({ misses: 5, bypassed: 2, evictions: 0, entries: 3, bytes: 3 * size, reservedBytes: 3 * size });
    // Next run: 1 again (a hit), then 6 and 7 evict 2 and 3, the least recently used; 8 finds no room.
    use(encodes([1, 6, 7, 8]));
    expect(cache.stats).toMatchObject({ hits: 1, misses: 8, bypassed: 3, evictions: 2, entries: 3, bytes: 3 * size });
    // 9 evicts 6, not 1, though 1 is less recently used: this run encodes 1 (and 7) later.
    use(encodes([9, 7, 1]));
    expect(cache.stats).toMatchObject({ hits: 3, misses: 9, evictions: 3, entries: 3 });
    expect(cache.stats.reservedBytes).toBeLessThanOrEqual(cache.budgetBytes);
    // Another level needs budget of its own: none is left, and evicting level 2 would not free SEAL pool memory.
    cache.beginRun(encodes([10]));
    cache.encode('other', level + 1, params.scale, () => dense(10));
    expect(cache.stats).toMatchObject({ bypassed: 4, entries: 3 });
    cache.dispose();
    expect(cache.stats).toMatchObject({ entries: 0, bytes: 0 });
    ev.dispose();
  });

  it('encodes ahead while told the answer is not in, only into free room, and the next run finds them', async () => {
    const ev = await simBackend.createEvaluator(params, (await simBackend.createClient(params, { galoisSteps: [], relin: false })).evaluationKeys());
    const level = [...encodeLevels(encodes([1]))][0]!;
    const size = plaintextBytes(params, level);
    const cache = new PlaintextCache(ev, 4 * size);
    const use = (p: FheProgram) => useCache(cache, p);
    use(encodes([1, 2]));
    expect(cache.stats).toMatchObject({ misses: 2, entries: 2, prefetched: 0 });
    // The next program is only built when the work starts (a plan loaded while waiting).
    let built = 0;
    const ahead = cache.prefetch(() => (built++, encodes([2, 3, 4, 5, 6])));
    expect(ahead.pending()).toBe(true);
    expect(built).toBe(0);
    // An answer already in: nothing is done.
    ahead.fill(() => true);
    expect(cache.stats.prefetched).toBe(0);
    // The answer comes after two checks: two encodes (2 is in already and costs none).
    let checks = 0;
    ahead.fill(() => ++checks > 3);
    expect(built).toBe(1);
    expect(cache.stats).toMatchObject({ prefetched: 2, entries: 4, evictions: 0 });
    expect(ahead.pending()).toBe(true);
    // The budget (4 plaintexts) is full: it stops without evicting 1 or 2, and has nothing left to do.
    ahead.fill(() => false);
    expect(cache.stats).toMatchObject({ prefetched: 2, entries: 4, evictions: 0, bypassed: 0 });
    expect(ahead.pending()).toBe(false);
    // The run it was made for: 2, 3 and 4 are hits, 5 and 6 misses (5 evicts 1, not needed by this run).
    use(encodes([2, 3, 4, 5, 6]));
    expect(cache.stats).toMatchObject({ hits: 3, misses: 4, evictions: 1, bypassed: 1 });
    expect(cache.stats.reservedBytes).toBeLessThanOrEqual(cache.budgetBytes);
    cache.dispose();
    ev.dispose();
  });

  it('hashes each program once; keys follow content, not names', () => {
    const a = program([1, 2], 'a');
    const b = program([1, 2], 'b');
    const ka = constantKeys(a);
    expect(constantKeys(a)).toBe(ka);
    expect([...constantKeys(b).values()].sort()).toEqual([...ka.values()].sort());
    expect(new Set(ka.values()).size).toBe(ka.size);
    // Dense constants only: the splat is encoded each time.
    expect(ka.size).toBe(3);
    expect([...a.constants.values()].filter((c) => ka.has(c.name)).every((c) => c.data.kind === 'dense')).toBe(true);
    expect([...constantKeys(program([1, 3])).values()]).not.toEqual(expect.arrayContaining([...ka.values()]));
  });

  it('defaults to 1 GiB, less when the keys leave too little of the 4 GiB wasm heap', () => {
    // Model A at N = 16384: 450 MB of seeded Galois and relinearization keys.
    expect(defaultPlaintextBudget(450 * 2 ** 20)).toBe(2 ** 30);
    expect(defaultPlaintextBudget(900 * 2 ** 20)).toBe(WASM_HEAP_BYTES - 1800 * 2 ** 20 - 2 * 2 ** 30);
    expect(defaultPlaintextBudget(2 ** 31)).toBe(0);
  });
});
