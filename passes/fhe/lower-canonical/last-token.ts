// The last position's row of an activation, alone in a one-token layout (`logits: 'last'`): a
// generation prefill needs only the next token's logits, so its lm_head runs on one token, as in a
// decode step, instead of on every prompt position (with a 128k vocabulary: 16 output ciphertexts at
// N = 16384 instead of 501 for 8 tokens). The other tokens' slots are zeroed (by a 0/1 mask, or
// already by the final rms_norm's gain: no level), then a rotate-and-sum over the token blocks puts
// the last token's block into every block: the row replicated over the whole ciphertext, the layout
// of a one-token step. log2(tokens per ciphertext) rotations.

import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { Graph, Node, Value } from '../../../ir/graph/types.js';
import { rotateAndSum } from '../layout/packing.js';
import type { Activation } from './activation.js';
import { slotVector } from './slots.js';

/**
 * Whether `v` is a model output the lowering holds for the last position only: a logits tensor
 * [B, S, width] with S > 1 (not a KV-cache output) when the lowering is asked for `logits: 'last'`.
 */
export function lastTokenOnly(graph: Graph, logits: 'all' | 'last' | undefined, v: Value): boolean {
  return logits === 'last' && graph.outputs.includes(v) && v.shape?.length === 3 && (v.shape[1] as number) > 1;
}

/**
 * The linear node `x` feeds whose output is held for the last position only, when x is used by
 * that node alone: its producer (the final rms_norm) may zero the other tokens for free.
 */
export function feedsLastTokenLinear(graph: Graph, logits: 'all' | 'last' | undefined, consumers: readonly Node[]): boolean {
  return consumers.length === 1 && consumers[0]!.op === 'linear' && lastTokenOnly(graph, logits, consumers[0]!.outputs[0]!);
}

/** The last token's row of `x`, one token replicated over the whole ciphertext. `zeroed`: the other tokens' slots hold 0 already. */
export function lastTokenRow(b: FheBuilder, x: Activation, zeroed: boolean, stats: { rotations: number }): Activation {
  const lastStart = Math.max(...x.blocks.map((blk) => blk.tokenStart));
  const blocks = x.blocks
    .filter((blk) => blk.tokenStart === lastStart)
    .map((blk) => {
      const { layout } = blk;
      const last = layout.tokens - 1;
      let v = zeroed ? blk.value : b.mulConst(blk.value, { kind: 'dense', values: slotVector(b.slots, layout, (p) => (p.t === last ? 1 : 0)) }, 'last_token');
      const blocksPerCiphertext = b.slots / layout.stride;
      if (blocksPerCiphertext > 1) {
        const cost = { rotations: 0, galoisSteps: [] as number[] };
        v = rotateAndSum(b, v, blocksPerCiphertext, layout.stride, cost);
        stats.rotations += cost.rotations;
      }
      const copies = b.slots / layout.period;
      return { value: v, layout: { length: layout.length, tokens: 1, stride: b.slots, period: layout.period, copies }, colStart: blk.colStart, tokenStart: 0 };
    });
  return { tokens: 1, length: x.length, blocks, ...(x.columns ? { columns: x.columns } : {}) };
}
