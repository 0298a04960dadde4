// One program serving several past lengths (decode plans by buckets of past length): a decode plan
// compiled for the bucket's longest past P_max runs any shorter past P of its bucket with a few
// constants replaced (the new token's RoPE tables and the cache masks: which block is the new token,
// which blocks hold a token) and the cache inputs/outputs given P's token counts (same stride, so the
// same slots). Everything else, ops, levels, scales and refresh points, is the plan's. Both sides use
// this: the compiler to check bounds at every P, the generation runtime to run step P.

import type { FheConstantData, FheProgram, SlotLayout } from './types.js';

export interface PastInstance {
  past: number;
  /** Replacement values of the plan's past-dependent constants, by constant name. */
  constants: Map<string, FheConstantData>;
  /** Layouts of the cache inputs and outputs at this past, by tensor name (input/output ops). */
  layouts: Map<string, SlotLayout>;
}

/** The program with the instance's constants and input/output layouts; the ops are otherwise shared. */
export function programAtPast(program: FheProgram, inst: Pick<PastInstance, 'constants' | 'layouts'>): FheProgram {
  const constants = new Map(program.constants);
  for (const [name, data] of inst.constants) {
    if (!constants.has(name)) throw new Error(`internal: past-dependent constant @${name} is not a constant of the program`);
    constants.set(name, { name, data });
  }
  const ops = program.ops.map((op) => {
    const layout = (op.kind === 'input' || op.kind === 'output') && op.tensor !== undefined ? inst.layouts.get(op.tensor) : undefined;
    return layout ? { ...op, layout } : op;
  });
  return { ...program, constants, ops };
}
