// How the canonical lowering holds a [tokens, length] activation: one or more column blocks, each a
// ciphertext in replicatedLayout(blockLength, slots, tokens) (token t in slots [t*stride, (t+1)*stride),
// the block's values at offsets 0..len-1 of every period copy). Wide tensors (an MLP's intermediate,
// the logits) are cut into blocks so that every matrix-vector product fits one token block.

import { FhecError } from '../../../ir/errors.js';
import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheValue, SlotLayout } from '../../../ir/fhe/types.js';
import { nextPow2, replicate, replicatedLayout } from '../packing.js';

export interface ActBlock {
  value: FheValue;
  layout: SlotLayout;
  /** First column of the tensor this block holds. */
  colStart: number;
}

export interface Activation {
  tokens: number;
  /** Columns held per token (the tensor's width, plus any padding channels). */
  length: number;
  blocks: ActBlock[];
  /**
   * The tensor column each held column carries, or -1 for a padding channel (held 0); absent when
   * held column i is tensor column i. Attention heads whose size is not a power of two are held padded
   * to nextPow2(head size) channels, so within-head sums stay rotations by powers of two.
   */
  columns?: readonly number[];
}

/** Held columns of `heads` heads of `headSize`, each padded to nextPow2(headSize) (-1 = padding). */
export function paddedHeadColumns(heads: number, headSize: number, column: (head: number, c: number) => number): number[] {
  const stride = nextPow2(headSize);
  const cols: number[] = [];
  for (let h = 0; h < heads; h++) for (let c = 0; c < stride; c++) cols.push(c < headSize ? column(h, c) : -1);
  return cols;
}

/** Tensor column of held column i (-1 for padding). */
export function tensorColumn(x: Activation, i: number): number {
  return x.columns ? x.columns[i]! : i;
}

/** The activation's real (tensor) width: its held columns minus padding. */
export function tensorWidth(x: Activation): number {
  return x.columns ? x.columns.filter((c) => c >= 0).length : x.length;
}

/** The token block size (slots per token) for `tokens` tokens. */
export function tokenStride(slots: number, tokens: number): number {
  return slots / nextPow2(tokens);
}

export function singleBlock(value: FheValue, length: number, tokens: number, slots: number): Activation {
  return { tokens, length, blocks: [{ value, layout: replicatedLayout(length, slots, tokens), colStart: 0 }] };
}

/** The activation's only block; lowerings of ops that need the whole row in one ciphertext use this. */
export function onlyBlock(x: Activation, op: string): ActBlock {
  if (x.blocks.length !== 1) throw new FhecError(`${op}: expected the ${x.length} columns in one ciphertext, got ${x.blocks.length} blocks`);
  return x.blocks[0]!;
}

/**
 * From a value holding `length` values at offsets [0, length) of each token block and zeros in
 * [length, stride): the replicated layout (log2(copies) rotations, no level).
 */
export function replicateBlock(b: FheBuilder, v: FheValue, length: number, tokens: number, stats?: { rotations: number }): { value: FheValue; layout: SlotLayout } {
  const layout = replicatedLayout(length, b.slots, tokens, tokenStride(b.slots, tokens));
  const cost = { rotations: 0, galoisSteps: [] as number[] };
  const value = replicate(b, v, layout.period, layout.copies, cost);
  if (stats) stats.rotations += cost.rotations;
  return { value, layout };
}

export function sameCuts(a: Activation, c: Activation): boolean {
  if (String(a.columns ?? '') !== String(c.columns ?? '')) return false;
  return a.blocks.length === c.blocks.length && a.blocks.every((x, i) => x.colStart === c.blocks[i]!.colStart && x.layout.length === c.blocks[i]!.layout.length);
}
