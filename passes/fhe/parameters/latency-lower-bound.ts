// A lower bound on the latency the search would predict for a candidate, computed before its refreshes
// are placed: so a candidate that cannot beat the best one priced so far is skipped (branch and bound)
// instead of placed, managed and priced (on Llama-sized models each of those is seconds).
//
// Why it is a bound: refresh placement and scale management only add ops (refreshes, rescales,
// relinearizations, level moves) to the unmanaged program; every ciphertext op of it stays, and runs at
// the level of its first operand, which is at or above the level of its result, which the placement keeps
// at or above the value's floor (passes/fhe/refresh/refresh-graph.ts). So each such op costs at least
// the cheapest table entry at a level in [floor, top]; a rotation at least one key switch. Scale
// management encodes each constant a ciphertext op reads at least once, and an encode is priced at the
// chain's top whatever level it ends at. Everything added (and inputs, outputs, refresh round trips)
// costs at least 0. The one op placement removes: a product by a positive splat constant that is its
// operand's only reader, which it folds into a refresh of the operand when it refreshes that
// (passes/fhe/refresh/refresh-fold.ts): counted as 0, its constant as not encoded for it.

import type { FheOpKind, FheProgram } from '../../../ir/fhe/types.js';
import { opCost, TIMED_OPS, type CostTable, type TimedOp } from '../../../ir/ckks/cost-table.js';
import { foldCandidates } from '../refresh/refresh-fold.js';

const TIMED = new Set<string>(TIMED_OPS);
/** Kinds whose price depends on the chain's top or on where the client is (not bounded here: 0). */
const UNBOUNDED = new Set<FheOpKind>(['encode', 'input', 'output', 'refresh']);

/**
 * Milliseconds every managed form of `program` on ring degree `ringDegree` with top level `top` takes at
 * least, when value `v` sits at or above level floor(v).
 */
export function latencyLowerBound(program: FheProgram, costs: CostTable, ringDegree: number, top: number, floor: (name: string) => number): number {
  // cheapest[kind][f]: the cheapest cost of kind at a level in [f, top].
  const cheapest = new Map<string, number[]>();
  const cheapestAt = (kind: TimedOp, f: number): number => {
    let row = cheapest.get(kind);
    if (!row) {
      row = new Array<number>(top + 1);
      let m = Infinity;
      for (let l = top; l >= 0; l--) {
        m = Math.min(m, opCost(costs, kind, ringDegree, l, top));
        row[l] = m;
      }
      cheapest.set(kind, row);
    }
    return row[Math.min(Math.max(f, 0), top)]!;
  };
  let ms = 0;
  const constantOf = new Map<string, string>();
  const encoded = new Set<string>();
  const foldable = foldCandidates(program);
  for (const [i, op] of program.ops.entries()) {
    if (op.kind === 'encode') constantOf.set(op.result!.name, op.constant!);
    if (foldable.has(i)) continue;
    for (const a of op.args) {
      const c = a.type.kind === 'pt' ? constantOf.get(a.name) : undefined;
      if (c !== undefined) encoded.add(c);
    }
    const r = op.result;
    if (!r || r.type.kind !== 'ct' || UNBOUNDED.has(op.kind) || !TIMED.has(op.kind)) continue;
    ms += cheapestAt(op.kind as TimedOp, floor(r.name));
  }
  return ms + encoded.size * opCost(costs, 'encode', ringDegree, top, top);
}
