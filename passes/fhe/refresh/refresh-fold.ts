// Constant products folded into the refresh before them.
//
// A refresh can give back its value times a constant c at no cost: the key holder replies with
// round(rho (m + r)), rho the scale change from the masked ciphertext's scale to the one asked for,
// so declaring the masked ciphertext's scale as scale / c makes rho carry c (runtime: the refresh's
// masked scale, ir/fhe/refresh-scale.ts). A product by a splat constant that is the only reader of a
// refreshed value, `t = refresh(x) * c`, which spends a level, becomes `t = refresh x times c`, which
// spends none: t starts at the top level. The affine map that opens every Chebyshev evaluation
// (t = alpha x + beta) after a refresh of x then no longer needs t refreshed a second time.
// The key holder learns c from the request's scale; c is a constant of the plan, which is public.

import type { FheOp, FheProgram } from '../../../ir/fhe/types.js';

/**
 * Products that a refresh of their operand would carry: by a positive splat constant (a scale is
 * positive), and the operand's only reader. Product index -> factor.
 */
export function foldCandidates(program: FheProgram): Map<number, number> {
  const readers = new Map<string, number>();
  for (const op of program.ops) for (const a of new Set(op.args.map((x) => x.name))) readers.set(a, (readers.get(a) ?? 0) + 1);
  const splatOf = new Map<string, number>();
  for (const op of program.ops) {
    if (op.kind !== 'encode' || !op.result) continue;
    const c = program.constants.get(op.constant!);
    if (c?.data.kind === 'splat' && Number.isFinite(c.data.value) && c.data.value > 0) splatOf.set(op.result.name, c.data.value);
  }
  const out = new Map<number, number>();
  program.ops.forEach((op, i) => {
    if (op.kind !== 'mul_plain') return;
    const [x, p] = op.args;
    const factor = splatOf.get(p!.name);
    if (factor !== undefined && readers.get(x!.name) === 1) out.set(i, factor);
  });
  return out;
}

/** The candidates whose operand is in `refreshed`: product index -> factor. */
export function foldableProducts(program: FheProgram, refreshed: ReadonlySet<string>): Map<number, number> {
  return new Map([...foldCandidates(program)].filter(([i]) => refreshed.has(program.ops[i]!.args[0]!.name)));
}

/** The program with each foldable product replaced by a refresh of its operand times its constant (same result name). */
export function foldIntoRefreshes(program: FheProgram, folds: ReadonlyMap<number, number>): FheProgram {
  const ops: FheOp[] = program.ops.map((op, i) => {
    const factor = folds.get(i);
    return factor === undefined ? op : { kind: 'refresh', args: [op.args[0]!], result: op.result!, factor };
  });
  return { ...program, constants: new Map(program.constants), ops };
}
