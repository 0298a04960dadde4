// The bound on what evaluation workers can gain (bench/parallel-bound.ts), on plans whose answer is known:
// one chain cannot go faster on more workers; k equal independent chains of squarings go close to k times
// faster until the workers outnumber them; a refresh round between stages adds time no worker removes.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runParallelBound } from '../bench/parallel-bound.js';
import { fheChain, selectParameters, topLevel } from '../ir/ckks/params.js';
import { FheBuilder, type FheValue } from '../ir/fhe/index.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { placeRefreshes } from '../passes/fhe/refresh/refresh-placement.js';
import { writePlan } from '../runtime/plan/plan.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-parallel-bound-'));

/** `chains` independent chains of `depth` squarings of x, summed; refreshed where the chain runs out when `levels` is given. */
function plan(chains: number, depth: number, levels?: number, side = false): string {
  const params = selectParameters({ depth: levels ?? depth + 1 });
  const slots = params.ringDegree / 2;
  const L = { length: slots, tokens: 1, stride: slots, period: slots, copies: 1 };
  const b = new FheBuilder('chains', slots);
  const x = b.input('x', L);
  let sum: FheValue | undefined;
  for (let c = 0; c < chains; c++) {
    let y = b.mulConst(x, { kind: 'splat', value: 0.5 + c / 10 });
    for (let d = 0; d < depth; d++) y = b.mul(y, y);
    sum = sum ? b.add(sum, y) : y;
  }
  // A side branch read only by the output: no refresh round needs it.
  if (side) sum = b.add(sum!, b.mulConst(x, { kind: 'splat', value: 0.3 }));
  b.output('y', sum!, L);
  const built = levels === undefined ? b.build() : placeRefreshes(b.build(), { levels }).program;
  const program = manageScales(built, { chain: fheChain(params), topScale: params.scale, inputLevel: topLevel(params) });
  const file = path.join(dir, `p${chains}-${depth}-${levels ?? 'x'}${side ? '-side' : ''}.json`);
  writePlan(file, program, params, program.ops.filter((op) => op.kind === 'refresh').map((op) => ({ value: op.args[0]!.name, bound: 1, source: 'declared' as const })));
  return file;
}

describe('parallel-bound', () => {
  it('gives one chain no gain, and k equal chains nearly k times up to k workers', () => {
    const one = runParallelBound({ plan: plan(1, 3), workers: [2, 4] });
    for (const w of one.byWorkers) expect(w.speedup).toBeCloseTo(1, 6);
    const four = runParallelBound({ plan: plan(4, 3), workers: [2, 4, 8] });
    const at = (w: number) => four.byWorkers.find((x) => x.workers === w)!.speedup;
    expect(at(2)).toBeGreaterThan(1.8);
    expect(at(2)).toBeLessThanOrEqual(2);
    expect(at(4)).toBeGreaterThan(3);
    expect(at(4)).toBeLessThanOrEqual(4);
    // More workers than chains: the critical path is the bound.
    expect(at(8)).toBeCloseTo(at(4), 6);
  });

  it('counts the work a round does not need: none on one refreshed chain, a side branch read only by the output', () => {
    const chain = runParallelBound({ plan: plan(1, 6, 2), workers: [2] });
    expect(chain.stages).toBeGreaterThan(1);
    expect(chain.overlappableMs).toBe(0);
    const side = runParallelBound({ plan: plan(1, 6, 2, true), workers: [2] });
    expect(side.overlappableMs).toBeGreaterThan(0);
    // Only the side branch's product (and what brings it to the sum's level) before the last round.
    expect(side.overlappableMs).toBeLessThan(side.opsMs - chain.opsMs + 1e-9);
  });

  it('keeps the refresh rounds serial: with them the bound drops, and spreading the masking raises it', () => {
    const r = runParallelBound({ plan: plan(4, 6, 2), workers: [2] });
    expect(r.refreshMs).toBeGreaterThan(0);
    expect(r.stages).toBeGreaterThan(1);
    const two = r.byWorkers.find((x) => x.workers === 2)!;
    // One-thread time over the bound, the refreshes counted in both.
    expect(two.speedup).toBeCloseTo((r.opsMs + r.refreshMs) / two.boundMs, 9);
    expect(two.speedup).toBeLessThan((r.opsMs + r.refreshMs) / ((r.opsMs / 2) + r.refreshMs) + 1e-9);
    expect(two.maskingSpreadSpeedup).toBeGreaterThan(two.speedup);
  });
});
