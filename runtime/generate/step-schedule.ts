// The refresh schedule of one generation step, from the plans alone (both sides derive it the same
// way: the evaluator to mask and carry, the client to check every request, runtime/refresh/schedule.ts).
// A decode step first receives the KV cache the previous step left: one carry per cache input (per
// piece of a split cache), in the plan's cacheInputs order, from the previous step's present output
// (its level, scale and layout, one level lower when the evaluator moves slots, and the bound the
// previous plan gives that output) into this step's input (its level, scale, layout).
// Then come the step program's refresh ops, round by round (runtime/refresh/rounds.ts).

import { FhecError } from '../../ir/errors.js';
import type { FheOp } from '../../ir/fhe/types.js';
import { refreshPointsOf, type RefreshPoint } from '../refresh/schedule.js';
import { shapeName, type StepPlan } from './plan-source.js';
import { pieceOverlaps } from './relayout.js';
import { carryMovesSlots } from './cache-refresh.js';

/** The model output a cache input is filled from (present.* for past_key_values.*). */
export function cacheSourceName(cacheInput: string): string {
  return cacheInput.replace(/past_key_values/, 'present');
}

function ioOp(sp: StepPlan, kind: 'input' | 'output', tensor: string): FheOp {
  const op = sp.plan.plan.program.ops.find((o) => o.kind === kind && o.tensor === tensor);
  if (!op) throw new FhecError(`plan ${shapeName(sp.shape)} has no ${kind} ${tensor}`, { file: sp.plan.file });
  return op;
}

/** The cache carries into `cur` (after `prev`), in the order they must be requested. */
function carryPoints(prev: StepPlan | undefined, cur: StepPlan): RefreshPoint[] {
  const inputs = cur.plan.meta.cacheInputs;
  if (inputs.length === 0) return [];
  if (!prev) throw new FhecError(`plan ${shapeName(cur.shape)} takes a KV cache, and no step before it made one`, { file: cur.plan.file });
  const slots = cur.plan.plan.program.slots;
  return inputs.flatMap((c) => {
    const source = cacheSourceName(c.name);
    const out = prev.plan.meta.outputs.find((o) => o.kv && o.name === source);
    if (!out) throw new FhecError(`no cached ${c.name}: plan ${shapeName(prev.shape)} does not output ${source}`, { file: prev.plan.file });
    const bound = prev.cacheBounds[source];
    if (bound === undefined) throw new FhecError(`plan ${shapeName(prev.shape)} gives no bound on |x| for its cache output ${source} (recompile the step plan)`, { file: prev.plan.file });
    const taken = ioOp(cur, 'input', c.fhe);
    const to = taken.layout!;
    // A split cache moves by pieces: each source block into each destination it overlaps (relayout.ts).
    const whole = out.blocks.length === 1 && !c.tokenStart && out.blocks[0]!.layout.tokens === to.tokens;
    return out.blocks
      .map((blk) => ({ blk, piece: { fromStart: blk.tokenStart ?? 0, toStart: c.tokenStart ?? 0 } }))
      .filter(({ blk, piece }) => whole || pieceOverlaps(blk.layout, to, piece))
      .map(({ blk, piece }): RefreshPoint => {
        const sent = ioOp(prev, 'output', blk.fhe).args[0]!.type;
        // The evaluator moves the slots itself before masking (cache-refresh.ts): one level, and the
        // scale times the 0/1 masks' scale (the prime as a double) over the prime it rescales by.
        const moves = carryMovesSlots(blk.layout, to, slots, whole ? undefined : piece);
        const prime = cur.plan.plan.params.primes[sent.level!]!;
        return {
          id: c.fhe,
          kind: 'carry',
          level: moves ? sent.level! - 1 : sent.level!,
          scale: moves ? (sent.scale! * Number(prime)) / Number(prime) : sent.scale!,
          toLevel: taken.result!.type.level!,
          toScale: taken.result!.type.scale!,
          slots,
          bound,
          from: blk.layout,
          to,
          ...(whole ? {} : { piece }),
        };
      });
  });
}

/** Every refresh point of step `cur`: its cache carries, then its refresh ops. */
export function stepRefreshPoints(prev: StepPlan | undefined, cur: StepPlan): RefreshPoint[] {
  return [...carryPoints(prev, cur), ...refreshPointsOf(cur.plan.plan.program, cur.plan.plan.refreshBounds, cur.plan.file)];
}
