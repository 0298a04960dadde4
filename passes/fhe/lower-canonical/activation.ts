// How the canonical lowering holds a [tokens, length] activation: blocks of columns x tokens, each a
// ciphertext in a replicated layout (token t of the block in slots [t*stride, (t+1)*stride), the
// block's values at offsets 0..len-1 of every period copy). Wide tensors (an MLP's intermediate, the
// logits) are cut into column blocks so that every matrix-vector product fits one token block; long
// prefills are cut into token groups (tokenGrouping) when the tokens do not fit one ciphertext with
// the 2 copies of a row that rms_norm and the matrix-vector products need.

import { FhecError } from '../../../ir/errors.js';
import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheValue, SlotLayout } from '../../../ir/fhe/types.js';
import { nextPow2, replicate, replicatedLayout } from '../layout/packing.js';

export interface ActBlock {
  value: FheValue;
  layout: SlotLayout;
  /** First column of the tensor this block holds. */
  colStart: number;
  /** First token this block holds (its token group starts there). */
  tokenStart: number;
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

/**
 * How `tokens` tokens are split over ciphertexts: groups of `groupSize` tokens (a power of two; the
 * last group may hold fewer), each token in a block of `stride` = slots / groupSize slots. One group
 * when the tokens fit with 2 copies of the widest row (period `maxPeriod`); else as many tokens per
 * ciphertext as leave 2 copies.
 */
export interface TokenGrouping {
  tokens: number;
  groupSize: number;
  stride: number;
}

export function tokenGrouping(slots: number, tokens: number, maxPeriod: number, what: string): TokenGrouping {
  const groupSize = Math.min(nextPow2(tokens), Math.floor(slots / (2 * maxPeriod)));
  if (groupSize < 1) {
    throw new FhecError(`${what}: a token's row of ${maxPeriod} slots needs 2 copies (${2 * maxPeriod} slots) in one ciphertext, the ring has ${slots} slots (use a larger --ring-degree)`);
  }
  return { tokens, groupSize, stride: slots / groupSize };
}

/** The token groups: first token and token count of each. */
export function tokenGroups(g: TokenGrouping): { tokenStart: number; tokens: number }[] {
  const out: { tokenStart: number; tokens: number }[] = [];
  for (let t = 0; t < g.tokens; t += g.groupSize) out.push({ tokenStart: t, tokens: Math.min(g.groupSize, g.tokens - t) });
  return out;
}

/** The token groups an activation's blocks fall in (first token, tokens), in order. */
export function groupsOf(x: Activation): { tokenStart: number; tokens: number }[] {
  const seen = new Map<number, number>();
  for (const blk of x.blocks) seen.set(blk.tokenStart, blk.layout.tokens);
  return [...seen].sort((a, c) => a[0] - c[0]).map(([tokenStart, tokens]) => ({ tokenStart, tokens }));
}

/** The replicated layout of each token group's row of `length` columns. */
export function groupLayouts(g: TokenGrouping, length: number, slots: number): { tokenStart: number; layout: SlotLayout }[] {
  return tokenGroups(g).map((grp) => ({ tokenStart: grp.tokenStart, layout: replicatedLayout(length, slots, grp.tokens, g.stride) }));
}

/** One replicated ciphertext per token group (values in group order), `length` columns each. */
export function rowBlocks(values: readonly FheValue[], length: number, g: TokenGrouping, slots: number): Activation {
  const groups = groupLayouts(g, length, slots);
  if (values.length !== groups.length) throw new Error(`internal: ${values.length} values for ${groups.length} token groups`);
  return { tokens: g.tokens, length, blocks: groups.map((grp, i) => ({ value: values[i]!, layout: grp.layout, colStart: 0, tokenStart: grp.tokenStart })) };
}

/** The block of each token group; lowerings of ops that need the whole row in one ciphertext use this. */
export function rowsOf(x: Activation, op: string): ActBlock[] {
  const groups = groupsOf(x);
  if (x.blocks.length !== groups.length) throw new FhecError(`${op}: expected the ${x.length} columns in one ciphertext per token group, got ${x.blocks.length} blocks for ${groups.length} groups`);
  return groups.map((g) => x.blocks.find((blk) => blk.tokenStart === g.tokenStart)!);
}

/**
 * From a value holding `length` values at offsets [0, length) of each token block (of `stride` slots)
 * and zeros in [length, stride): the replicated layout (log2(copies) rotations, no level).
 */
export function replicateBlock(b: FheBuilder, v: FheValue, length: number, tokens: number, stride: number, stats?: { rotations: number }): { value: FheValue; layout: SlotLayout } {
  const layout = replicatedLayout(length, b.slots, tokens, stride);
  const cost = { rotations: 0, galoisSteps: [] as number[] };
  const value = replicate(b, v, layout.period, layout.copies, cost);
  if (stats) stats.rotations += cost.rotations;
  return { value, layout };
}

export function sameCuts(a: Activation, c: Activation): boolean {
  if (String(a.columns ?? '') !== String(c.columns ?? '')) return false;
  return a.blocks.length === c.blocks.length && a.blocks.every((x, i) => x.colStart === c.blocks[i]!.colStart && x.tokenStart === c.blocks[i]!.tokenStart && x.layout.length === c.blocks[i]!.layout.length && x.layout.stride === c.blocks[i]!.layout.stride);
}
