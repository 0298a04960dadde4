// The README's library example for the FHE passes: an outside program builds a small CKKS program
// with the builder, states its parameters as annotations, and runs place-refresh and manage-scales
// through the same pass machinery `fhec` uses. Imports are the package's public entry points.
import { describe, expect, it } from 'vitest';
import { fhe } from '../ir/index.js';
import { runFhePipeline, unitOf } from '../passes/index.js';

describe('FHE passes as a library', () => {
  it('places refreshes and manages scales on a program built outside the compiler', () => {
    // --- README snippet (Library API: FHE passes) ---
    // y = x^8 / 2, packed for N = 16384 (8192 slots); 4 levels deep.
    const b = new fhe.FheBuilder('poly', 8192);
    const layout = { length: 4, tokens: 1, stride: 8192, period: 8192, copies: 1 };
    let y = b.input('x', layout);
    for (let i = 0; i < 3; i++) y = b.mul(y, y);
    b.output('y', b.mulConst(y, { kind: 'splat', value: 0.5 }), layout);

    const unit = unitOf(b.build());
    // A 3-level chain (tc128 at N=16384); inputs encrypted at its top.
    unit.program.attributes = { 'ckks.ring_degree': 16384, 'ckks.bit_sizes': '60,40,40,40,60', 'ckks.scale': 2 ** 40, 'mgmt.input_level': 3 };
    const runs = runFhePipeline(unit, 'place-refresh{strategy=optimal,levels=3},manage-scales,verify');
    const text = fhe.printFhe(unit.program); // managed: every value has its level and scale
    // --- end of snippet ---

    expect(runs.map((r) => r.pass)).toEqual(['place-refresh', 'manage-scales', 'verify']);
    expect(runs[0]!.result.stats).toMatchObject({ refreshes: 1, greedy: 1, levels: 3 });
    const program = fhe.parseFhe(text);
    expect(program.chain?.primes).toHaveLength(4);
    // The refresh lands on x^8, whose only reader is the product by 0.5: the product rides on it
    // (`refresh %y times 0.5`). x^8 is refreshed as the last squaring leaves it (size 3, unrescaled:
    // manage-scales' refresh-products), so the first two squarings are the only rescales and
    // relinearizations.
    const refreshes = program.ops.filter((op) => op.kind === 'refresh');
    expect(refreshes.map((op) => op.factor)).toEqual([0.5]);
    expect(refreshes.map((op) => op.args[0]!.type)).toMatchObject([{ kind: 'ct', size: 3 }]);
    expect(program.ops.filter((op) => op.kind === 'rescale')).toHaveLength(2);
    expect(program.ops.filter((op) => op.kind === 'relinearize')).toHaveLength(2);
    for (const op of program.ops) if (op.result) expect(op.result.type.level, `%${op.result.name}`).toBeGreaterThanOrEqual(0);
    // The managed program still computes x^8 / 2 (refreshes and rescales leave values as they are).
    const x = [0.9, -0.5, 1.1, 0.3];
    const out = fhe.evaluatePlain(program, { x }).outputs.get('y')!;
    x.forEach((v, i) => expect(out[i]).toBeCloseTo(v ** 8 / 2, 12));
  });
});
