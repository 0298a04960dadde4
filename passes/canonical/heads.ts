// The head split and merge of decomposed attention: [B, S, N*H] -> Reshape [B, S, N, H] -> Transpose
// (0, 2, 1, 3) -> [B, N, S, H], and back. Canonical rope and attention work on the [B, S, N*H] form,
// so the raising passes look through these layout changes.

import type { Node, Value } from '../../ir/graph/types.js';
import { concreteShape, producedBy, sameDims, transposePerm } from './rewrite.js';

export interface HeadSplit {
  /** The [B, S, N*H] value. */
  x3: Value;
  heads: number;
  headSize: number;
  reshape: Node;
  transpose: Node;
}

/** v = Transpose(Reshape(x3, [B, S, N, H]), perm 0,2,1,3) with x3 = [B, S, N*H]. */
export function matchHeadSplit(v: Value | null | undefined): HeadSplit | undefined {
  const t = producedBy(v, 'Transpose');
  if (!t || !sameDims(transposePerm(t), [0, 2, 1, 3])) return undefined;
  const r = producedBy(t.inputs[0], 'Reshape');
  const x3 = r?.inputs[0];
  const s3 = concreteShape(x3);
  const s4 = concreteShape(r?.outputs[0]);
  if (!r || !x3 || !s3 || !s4 || s3.length !== 3 || s4.length !== 4) return undefined;
  if (s4[0] !== s3[0] || s4[1] !== s3[1] || s4[2]! * s4[3]! !== s3[2]) return undefined;
  return { x3, heads: s4[2]!, headSize: s4[3]!, reshape: r, transpose: t };
}

export interface HeadMerge {
  /** The [B, N, S, H] value. */
  x4: Value;
  reshape: Node;
}

/** y3 = Reshape(Transpose(x4, perm 0,2,1,3), [B, S, N*H]) with x4 = [B, N, S, H]. */
export function matchHeadMerge(y3: Value | null | undefined): HeadMerge | undefined {
  const r = producedBy(y3, 'Reshape');
  const t = producedBy(r?.inputs[0], 'Transpose');
  if (!r || !t || !sameDims(transposePerm(t), [0, 2, 1, 3])) return undefined;
  const x4 = t.inputs[0]!;
  const s4 = concreteShape(x4);
  const s3 = concreteShape(y3);
  if (!s4 || !s3 || s4.length !== 4 || s3.length !== 3) return undefined;
  if (s3[0] !== s4[0] || s3[1] !== s4[2] || s3[2] !== s4[1]! * s4[3]!) return undefined;
  return { x4, reshape: r };
}
