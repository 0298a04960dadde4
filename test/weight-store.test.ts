// Content-addressed weight storage for step plans (runtime/plan/weight-store.ts): a plan's sidecar
// moved into a shared store loads back to the same constants, a second plan stores only the chunks
// the first did not have, and a damaged weight list or store is a FhecError naming the file and field.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FhecError } from '../ir/errors.js';
import { FheBuilder } from '../ir/fhe/index.js';
import type { FheProgram } from '../ir/fhe/types.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { fheChain, selectParameters } from '../ir/ckks/params.js';
import { loadPlan, writePlan } from '../runtime/plan/plan.js';
import { moveWeightsToStore, WEIGHT_REFS_SUFFIX } from '../runtime/plan/weight-store.js';

const params = selectParameters({ depth: 2 });
const slots = params.ringDegree / 2;
const layout = { length: 8, tokens: 1, stride: slots, period: 8, copies: slots / 8 };
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-weight-store-'));
const store = path.join(dir, 'weights');

function dense(seed: number): Float64Array {
  return Float64Array.from({ length: slots }, (_, i) => Math.cos(seed * 3.3 + i * 0.11));
}

/** y = sum_i x * w_i + 1 (the splat stays inline in the program). */
function program(seeds: number[]): FheProgram {
  const b = new FheBuilder('p', slots);
  const x = b.input('x', layout);
  let acc = b.mulConst(x, { kind: 'dense', values: dense(seeds[0]!) });
  for (const s of seeds.slice(1)) acc = b.add(acc, b.mulConst(x, { kind: 'dense', values: dense(s) }));
  b.output('y', b.addConst(acc, { kind: 'splat', value: 1 }), layout);
  return manageScales(b.build(), { chain: fheChain(params), topScale: params.scale });
}

function denseValues(p: FheProgram): Float64Array[] {
  return [...p.constants.values()].filter((c) => c.data.kind === 'dense').map((c) => (c.data as { values: Float64Array }).values);
}

const P1 = path.join(dir, 'p1.json');
const P2 = path.join(dir, 'p2.json');

beforeAll(() => {
  writePlan(P1, program([1, 2, 3, 2]), params);
  writePlan(P2, program([1, 2, 4]), params);
});

/** A copy of P1 (plan and weight list, same store) with the weight list edited. */
function edited(name: string, edit: (refs: Record<string, any>) => void): string {
  const plan = JSON.parse(fs.readFileSync(P1, 'utf8'));
  const refs = JSON.parse(fs.readFileSync(path.join(dir, plan.weights.file), 'utf8'));
  edit(refs);
  plan.weights.file = `${name}${WEIGHT_REFS_SUFFIX}`;
  fs.writeFileSync(path.join(dir, plan.weights.file), JSON.stringify(refs));
  const file = path.join(dir, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify(plan));
  return file;
}

function loadError(file: string): FhecError {
  try {
    loadPlan(file);
  } catch (e) {
    if (e instanceof FhecError) return e;
    throw e;
  }
  throw new Error('loaded');
}

describe('weight store', () => {
  it('moves a sidecar into the store, loads the same constants, and stores what a second plan shares once', () => {
    const before1 = denseValues(loadPlan(P1).program);
    const before2 = denseValues(loadPlan(P2).program);
    expect(before1.length).toBe(4);
    const s1 = moveWeightsToStore(P1, store)!;
    // Four constants, one chunk each; w2 appears twice and is stored once.
    expect(s1).toMatchObject({ chunks: 4, newChunks: 3, newBytes: 3 * slots * 8, byteLength: 4 * slots * 8 });
    expect(fs.existsSync(P1.replace(/\.json$/, '.weights.bin'))).toBe(false);
    expect(JSON.parse(fs.readFileSync(P1, 'utf8')).weights).toMatchObject({ file: `p1${WEIGHT_REFS_SUFFIX}`, byteLength: 4 * slots * 8 });
    expect(denseValues(loadPlan(P1).program)).toEqual(before1);
    // P2 shares w1 and w2: only w4 is new.
    expect(moveWeightsToStore(P2, store)).toMatchObject({ chunks: 3, newChunks: 1, newBytes: slots * 8 });
    expect(denseValues(loadPlan(P2).program)).toEqual(before2);
    expect(fs.readdirSync(store).sort()).toHaveLength(4);
    // Already moved: nothing to do.
    expect(moveWeightsToStore(P2, store)).toBeUndefined();
  });

  it('refuses a damaged weight list or store, naming the file and field', () => {
    const cases: [string, (r: Record<string, any>) => void, RegExp, string?][] = [
      ['version', (r) => (r.version = 2), /unknown weight list version 2/],
      ['field', (r) => (r.extra = 1), /malformed weight list: \(root\): Unrecognized key/],
      ['sha', (r) => (r.chunks[0].sha256 = 'ABC'), /malformed weight list: chunks\[0\]\.sha256: expected a sha256/],
      ['sum', (r) => (r.chunks[1].bytes += 8), /malformed weight list: byteLength: is \d+, the chunks add up to \d+/],
      ['escape', (r) => (r.store = '..'), /store: expected a plain directory name/],
      ['missing', (r) => (r.chunks[2].sha256 = '0'.repeat(64)), /cannot read weight chunk weights\/0{64}\.bin: does not exist/, 'chunks[2]'],
    ];
    for (const [name, edit, message, field] of cases) {
      const e = loadError(edited(name, edit));
      expect(e.message, name).toMatch(message);
      expect(e.where.file, name).toMatch(new RegExp(`${name}${WEIGHT_REFS_SUFFIX.replace(/\./g, '\\.')}$`));
      if (field) expect(e.where.field, name).toBe(field);
    }
    // A chunk that lost bytes in the store.
    const refs = JSON.parse(fs.readFileSync(path.join(dir, `p2${WEIGHT_REFS_SUFFIX}`), 'utf8'));
    const chunk = path.join(store, `${refs.chunks[2].sha256}.bin`);
    fs.truncateSync(chunk, 64);
    expect(loadError(P2).message).toMatch(new RegExp(`weight chunk weights/${refs.chunks[2].sha256}\\.bin has 64 bytes, expected ${slots * 8}`));
    // A chunk whose bytes changed (same size) is caught by its digest, naming the chunk.
    fs.writeFileSync(chunk, new Uint8Array(slots * 8));
    expect(loadError(P2).message).toMatch(new RegExp(`weight chunk weights/${refs.chunks[2].sha256}\\.bin is corrupt or was changed: its sha256 is`));
    // The next plan that stores the same constant rewrites the damaged chunk instead of reusing it.
    const P3 = path.join(dir, 'p3.json');
    writePlan(P3, program([1, 2, 4]), params);
    expect(moveWeightsToStore(P3, store)).toMatchObject({ newChunks: 1, newBytes: slots * 8 });
    expect(denseValues(loadPlan(P2).program)).toEqual(denseValues(loadPlan(P3).program));
  });
});
