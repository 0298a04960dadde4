// DEBUG ONLY: where a model plan's values of interest sit in its managed program, for comparing the
// precision pass's predictions with debug measurements (runtime/debug/measure.ts) value by value.
//
// The lowering names values in its own (unmanaged) program; scale management rebuilds the program and
// renames every value. A managed value computes the same slot vector as the unmanaged value it stands
// for, bit for bit in float64 (rescale, relinearize, mod_switch and refresh leave values unchanged and
// the scale adjustments multiply by exactly 1), so values are matched by their noise-free slots.

import { createHash } from 'node:crypto';
import type { FheProgram } from '../../ir/fhe/types.js';
import type { PlainEvaluation } from '../../ir/fhe/plain-eval.js';

const digest = (v: Float64Array): string => createHash('sha1').update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)).digest('hex');

/**
 * For each name in `names` (values of `unmanaged`), the first ciphertext value of `managed` with the same
 * noise-free slots; names without one are left out.
 */
export function matchManagedValues(
  unmanaged: PlainEvaluation,
  managed: FheProgram,
  managedPlain: PlainEvaluation,
  names: Iterable<string>,
): Map<string, string> {
  const wanted = new Map<string, string[]>();
  for (const n of names) {
    const v = unmanaged.values.get(n);
    if (!v) continue;
    const h = digest(v);
    wanted.set(h, [...(wanted.get(h) ?? []), n]);
  }
  const out = new Map<string, string>();
  for (const op of managed.ops) {
    const r = op.result;
    if (!r || r.type.kind !== 'ct') continue;
    const v = managedPlain.values.get(r.name);
    if (!v) continue;
    const hit = wanted.get(digest(v));
    if (!hit) continue;
    for (const n of hit) if (!out.has(n)) out.set(n, r.name);
  }
  return out;
}

/**
 * The residual stream of a lowered decoder: starting from the embedding input, each ciphertext `add`
 * with the current residual as an operand is the next residual (after attention, then after the MLP,
 * per layer). Returns the residual after each of those adds, in order.
 */
export function residualStream(unmanaged: FheProgram, embeddingInput: string): string[] {
  const out: string[] = [];
  let cur = unmanaged.ops.find((op) => op.kind === 'input' && op.tensor === embeddingInput)?.result?.name;
  if (!cur) return out;
  let from = 0;
  for (;;) {
    const i = unmanaged.ops.findIndex((op, k) => k >= from && op.kind === 'add' && op.args.some((a) => a.name === cur));
    if (i < 0) return out;
    cur = unmanaged.ops[i]!.result!.name;
    out.push(cur);
    from = i + 1;
  }
}
