// Add, Sub, Mul (numpy broadcasting, ciphertext or plaintext on either side) and Neg.
// The result keeps the placement of an encrypted operand that already has the output's shape (so a chain
// of elementwise ops moves no data); otherwise elements go to consecutive slots, one block per `slots`
// elements. The other operand is brought to the same slots: a graph input is simply encrypted that way
// (broadcast copies packed by the client), a plaintext is encoded that way, and only an encrypted
// intermediate of another placement needs rotations (see gather.ts).
// Cost per output block: Add/Sub 1 addition, Mul 1 ct x ct or plaintext multiplication (depth 1), Neg 1 negation.

import { FhecError } from '../../../ir/errors.js';
import { numel } from '../../../ir/tensor.js';
import { notConstantOnly, type EncOperand, type LowerContext, type Operand, dimsOf } from './context.js';
import { broadcastIndex } from './indexing.js';
import { contiguousPlacement, GARBAGE, mapWant, wantFromHolds, ZERO, type Block, type Holds, type Want } from './placement.js';
import type { FheValue } from '../../../ir/fhe/types.js';

export type BinaryKind = 'Add' | 'Sub' | 'Mul';

/** Slots of the result: those of an encrypted operand already shaped like the output, else consecutive. */
function outputPlacement(ctx: LowerContext, outDims: number[], operands: Operand[]): Want[] {
  for (const x of operands) {
    if (x.kind === 'enc' && dimsOf(x).join(',') === outDims.join(',')) return x.blocks.map((b) => wantFromHolds(b.holds));
  }
  return contiguousPlacement(numel(outDims), ctx.slots);
}

type Side = { ct: FheValue; holds: Holds; plain: false } | { pt: FheValue; holds: Holds; plain: true };

/** The operand at the slots of `want` (output element indices), through broadcasting. */
export function operandAt(ctx: LowerContext, x: Operand, outDims: number[], want: Want, scale = 1): Side {
  const w = mapWant(want, broadcastIndex(outDims, dimsOf(x)));
  if (x.kind === 'plain') return { ...ctx.plain(x, w, scale), plain: true };
  const blk = ctx.cipher(x, w);
  const ct = scale === 1 ? blk.ct : ctx.mulScalar(blk.ct, scale);
  return { ct, holds: blk.holds, plain: false };
}

/** Labels of the result slots: the output elements where wanted, else zero or garbage. */
function resultHolds(want: Want, a: Holds, c: Holds, kind: BinaryKind): Holds {
  const h = new Int32Array(want.length);
  for (let s = 0; s < want.length; s++) {
    if (want[s]! >= 0) h[s] = want[s]!;
    else if (kind === 'Mul') h[s] = a[s] === ZERO || c[s] === ZERO ? ZERO : GARBAGE;
    else h[s] = a[s] === ZERO && c[s] === ZERO ? ZERO : GARBAGE;
  }
  return h;
}

export function lowerBinary(ctx: LowerContext, kind: BinaryKind, a: Operand, c: Operand, outDims: number[], node: string): EncOperand {
  if (a.kind === 'plain' && c.kind === 'plain') throw notConstantOnly(node);
  const b = ctx.b;
  const blocks: Block[] = outputPlacement(ctx, outDims, [a, c]).map((want) => {
    // Sub with a plaintext subtrahend adds its negation (no sub_plain op is needed).
    const x = operandAt(ctx, a, outDims, want);
    const y = operandAt(ctx, c, outDims, want, kind === 'Sub' && c.kind === 'plain' ? -1 : 1);
    const holds = resultHolds(want, x.holds, y.holds, kind);
    let ct: FheValue;
    if (!x.plain && !y.plain) {
      ct = kind === 'Add' ? b.add(x.ct, y.ct) : kind === 'Sub' ? b.sub(x.ct, y.ct) : ctx.mul(x.ct, y.ct);
    } else if (!x.plain && y.plain) {
      ct = kind === 'Mul' ? ctx.mulPlain(x.ct, y.pt) : b.addPlain(x.ct, y.pt);
    } else if (x.plain && !y.plain) {
      if (kind === 'Mul') ct = ctx.mulPlain(y.ct, x.pt);
      else ct = b.addPlain(kind === 'Sub' ? b.negate(y.ct) : y.ct, x.pt);
    } else {
      throw notConstantOnly(node);
    }
    return { ct, holds };
  });
  return { kind: 'enc', dims: outDims, blocks };
}

export function lowerNeg(ctx: LowerContext, x: Operand, node: string): EncOperand {
  if (x.kind === 'plain') throw notConstantOnly(node);
  const dims = dimsOf(x);
  const enc: EncOperand =
    x.kind === 'enc' ? x : { kind: 'enc', dims, blocks: contiguousPlacement(numel(dims), ctx.slots).map((w) => ctx.cipher(x, w)) };
  if (enc.blocks.length === 0) throw new FhecError('empty tensor', { node });
  return { kind: 'enc', dims, blocks: enc.blocks.map((blk) => ({ ct: ctx.b.negate(blk.ct), holds: blk.holds })) };
}
