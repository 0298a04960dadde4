// The constants of a decode lowering that depend on the past length P, each registered with the rule
// that gives its values at any past (ir/fhe/past-instance.ts). A decode plan compiled for the longest
// past of a bucket then runs every shorter past of the bucket with these constants recomputed: the
// new token's RoPE tables (its position) and the cache masks (the new token's block, the blocks that
// hold a token). The rules are the lowering's own code, so a constant at P is exactly what a plan
// compiled for P would hold.

import { FhecError } from '../../../ir/errors.js';
import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { PastInstance } from '../../../ir/fhe/past-instance.js';
import type { FheConstantData, FheValue, SlotLayout } from '../../../ir/fhe/types.js';
import type { LoweredModel } from './lower-model.js';

export type PastConstant = (past: number) => FheConstantData;

export class PastConstants {
  /** Rule per constant name. */
  readonly rules = new Map<string, PastConstant>();

  /** `past`: the past length being lowered (the registered constants hold the rules' values at it). */
  constructor(readonly past: number) {}

  private constant(b: FheBuilder, at: PastConstant, hint: string): string {
    const name = b.constant(at(this.past), hint);
    this.rules.set(name, at);
    return name;
  }

  mul(b: FheBuilder, x: FheValue, at: PastConstant, hint: string): FheValue {
    return b.mulPlain(x, b.encode(this.constant(b, at, hint)));
  }

  add(b: FheBuilder, x: FheValue, at: PastConstant, hint: string): FheValue {
    return b.addPlain(x, b.encode(this.constant(b, at, hint)));
  }
}

/**
 * A decode lowering at another past of its bucket: the past-dependent constants' values there and the
 * cache inputs/outputs' token counts (blocks keep their stride: a group of B blocks from token t0 holds
 * min(B, P - t0) past tokens and min(B, P + 1 - t0) present ones). Throws when `past` needs another
 * cache layout than the lowering's (it is not in the plan's bucket).
 */
export function pastInstance(lowered: Pick<LoweredModel, 'past' | 'slots' | 'pastConstants' | 'cacheInputs' | 'outputs'>, past: number): PastInstance {
  if (lowered.past === 0) throw new Error('internal: a prefill lowering has no past to vary');
  const layouts = new Map<string, SlotLayout>();
  const at = (l: SlotLayout, start: number, count: number, what: string): SlotLayout => {
    const tokens = Math.min(lowered.slots / l.stride, count - start);
    if (tokens <= 0) throw new FhecError(`a decode plan for past ${lowered.past} cannot serve past ${past}: ${what} would hold no token (another cache layout)`);
    return { ...l, tokens };
  };
  for (const c of lowered.cacheInputs) layouts.set(c.fhe, at(c.layout, c.tokenStart ?? 0, past, c.fhe));
  for (const o of lowered.outputs) if (o.kv) for (const b of o.blocks) layouts.set(b.fhe, at(b.layout, b.tokenStart ?? 0, past + 1, b.fhe));
  const constants = new Map<string, FheConstantData>([...lowered.pastConstants].map(([name, rule]) => [name, rule(past)]));
  return { past, constants, layouts };
}
