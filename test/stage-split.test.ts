// A traced step's time split by refresh stages (runtime/trace/stage-split.ts): ops a round waits on, ops
// no round waits on, and the rounds by their size, from measured op times.
import { describe, expect, it } from 'vitest';
import { FheBuilder } from '../ir/fhe/index.js';
import { roundInputs, refreshStages } from '../runtime/refresh/rounds.js';
import { formatStageSplit, splitByStages } from '../runtime/trace/stage-split.js';

const SLOTS = 8;
const layout = { length: SLOTS, tokens: 1, stride: SLOTS, period: SLOTS, copies: 1 };

/**
 * Round 1 refreshes x^2 and x^4 (the second through the first's product, within the stage); x / 2 and
 * x + 1 wait on nothing but feed only the output; round 2 refreshes the product of round 1's results.
 */
function program() {
  const b = new FheBuilder('split', SLOTS);
  const x = b.input('x', layout);
  const sq = b.mul(x, x);
  const quad = b.mul(sq, sq);
  const half = b.mulConst(x, { kind: 'splat', value: 0.5 });
  const plus = b.addConst(half, { kind: 'splat', value: 1 });
  const r1 = b.refresh(sq);
  const r2 = b.refresh(quad);
  const p = b.mul(r1, r2);
  const r3 = b.refresh(p);
  b.output('y', b.add(r3, plus), layout);
  return b.build();
}

describe('stage split of a traced step', () => {
  it('counts a round’s inputs as waited on, the rest as other, and each round with its size', () => {
    const prog = program();
    const kinds = prog.ops.map((op) => op.kind);
    const { stages } = refreshStages(prog);
    expect(stages.map((s) => s.refreshes.length)).toEqual([2, 1, 0]);
    // Waited on in stage 0: the input and both products (x^4 needs x^2); not: the x / 2 and x + 1 ops and their encodes.
    const waited0 = [...roundInputs(prog, stages[0]!)].map((i) => kinds[i]);
    expect(waited0.sort()).toEqual(['input', 'mul', 'mul']);
    // Times: each mul 10 ms, each refresh 7 ms, everything else 1 ms.
    const opMs = prog.ops.map((op) => (op.kind === 'mul' ? 10 : op.kind === 'refresh' ? 7 : 1));
    const split = splitByStages(prog, opMs);
    expect(split.waitedMs).toBe(31); // the input, x^2 and x^4 for round 1, r1 * r2 for round 2
    expect(split.roundsMs).toBe(21);
    expect(split.rounds).toBe(2);
    const rest = opMs.reduce((a, b) => a + b, 0) - 31 - 21;
    expect(split.otherMs).toBe(rest);
    expect(rest).toBeGreaterThan(0);
    expect(split.bySize).toEqual([
      { ciphertexts: 1, rounds: 1, ms: 7 },
      { ciphertexts: 2, rounds: 1, ms: 14 },
    ]);
    expect(split.heaviest.map((h) => [h.stage, h.waitedMs, h.refreshes])).toEqual([
      [0, 21, 2],
      [1, 10, 1],
    ]);
    // Each heavy stage lists the ops its round waited on: round 1's are the input and the two products.
    expect(split.heaviest[0]!.inputs.map((i) => kinds[i]).sort()).toEqual(['input', 'mul', 'mul']);
    expect(split.heaviest[1]!.inputs.map((i) => kinds[i])).toEqual(['mul']);
    expect(formatStageSplit(split)).toMatch(/^ops a round waits on 0\.03 s, other ops 0\.0\d s, 2 refresh rounds 0\.02 s \(rounds x ciphertexts: 1 x 1 \(7\.0 ms each\), 1 x 2 \(14\.0 ms each\)\)$/);
  });

  it('refuses a trace that does not match the program', () => {
    expect(() => splitByStages(program(), [1, 2, 3])).toThrow(/3 op times for a program of \d+ ops/);
  });
});
