// approximate{value=V,fn=F,lo=A,hi=B,abs-error=E|rel-error=R,max-depth=D}: replaces every later use
// of the ciphertext %V by F(%V), evaluated as the cheapest polynomial scheme meeting the target on
// [A, B] (passes/approx: Chebyshev, exp by squaring, Newton 1/x, ...), built into the unmanaged
// program op by op (approximation.ts). The scheme is annotated as approx.V; the pass reports its
// measured error. Values outside [A, B] are not covered: the interval is the caller's promise.

import { FhecError } from '../../../ir/errors.js';
import { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheOp, FheValue } from '../../../ir/fhe/types.js';
import { verifyFhe } from '../../../ir/fhe/verify.js';
import { approximate } from '../../approx/select.js';
import type { Pass } from '../../pass.js';
import { setAttrs, type FheUnit } from '../pipeline/unit.js';
import { applyApproximation } from './approximation.js';

export interface ApproximateOptions {
  value?: string;
  fn?: string;
  lo?: number;
  hi?: number;
  'abs-error'?: number;
  'rel-error'?: number;
  'max-depth'?: number;
}

export const approximatePass: Pass<FheUnit, ApproximateOptions> = {
  name: 'approximate',
  summary: 'replace later uses of a ciphertext by a polynomial approximation of a nonlinearity on a stated interval',
  reads: 'fhe',
  writes: 'fhe',
  options: [
    { name: 'value', type: 'string', help: 'the ciphertext (SSA name without %)' },
    { name: 'fn', type: 'string', help: 'exp, reciprocal, invsqrt, sigmoid, silu, gelu, tanh, ...' },
    { name: 'lo', type: 'float', help: 'interval start' },
    { name: 'hi', type: 'float', help: 'interval end' },
    { name: 'abs-error', type: 'float', help: 'largest absolute error on [lo, hi]' },
    { name: 'rel-error', type: 'float', help: 'largest relative error on [lo, hi]' },
    { name: 'max-depth', type: 'int', help: 'most levels the scheme may use' },
  ],
  run(unit, o) {
    const program = unit.program;
    for (const k of ['value', 'fn', 'lo', 'hi'] as const) if (o[k] === undefined) throw new FhecError(`approximate needs ${k}=...`);
    if (o['abs-error'] === undefined && o['rel-error'] === undefined) throw new FhecError('approximate needs abs-error=... or rel-error=...');
    if (program.chain) throw new FhecError('approximate works on unmanaged programs: approximate before manage-scales');
    const at = program.ops.findIndex((op) => op.result?.name === o.value);
    if (at < 0) throw new FhecError(`approximate: no value %${o.value}`);
    const x = program.ops[at]!.result!;
    if (x.type.kind !== 'ct') throw new FhecError(`approximate: %${o.value} is not a ciphertext`);
    const approx = approximate(o.fn!, [o.lo!, o.hi!], {
      ...(o['abs-error'] !== undefined ? { maxAbsError: o['abs-error'] } : {}),
      ...(o['rel-error'] !== undefined ? { maxRelError: o['rel-error'] } : {}),
      ...(o['max-depth'] !== undefined ? { maxDepth: o['max-depth'] } : {}),
    });
    const b = FheBuilder.extending(program);
    const y = applyApproximation(b, x, approx).value;
    const built = b.build();
    const rename = (a: FheValue) => (a.name === x.name ? y : a);
    const later: FheOp[] = program.ops.slice(at + 1).map((op) => ({ ...op, args: op.args.map(rename) }));
    unit.program = { ...program, constants: built.constants, ops: [...program.ops.slice(0, at + 1), ...built.ops, ...later] };
    verifyFhe(unit.program);
    setAttrs(unit.program, { [`approx.${o.value}`]: approx.describe() });
    const rel = o['abs-error'] === undefined;
    return {
      changed: true,
      stats: { ops: built.ops.length, depth: approx.depth, ct_mul: approx.nonScalarMuls },
      notes: [approx.describe()],
      error: { maxAbs: rel ? approx.maxRelError : approx.maxError, how: rel ? 'relative error measured on a dense grid (passes/approx/error.ts)' : 'measured on a dense grid (passes/approx/error.ts)' },
    };
  },
};
