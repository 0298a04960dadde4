// budget-precision{input-bound=B,abs-error=E,bits=K}: the precision analysis (precision.ts) of a
// managed program against its annotated CKKS parameters: bounds every output's error (fresh, encoding,
// rescale and key-switching noise), annotates precision.<output>.error / .bits, and fails, naming the
// output, when one misses the requirement or a value overflows the modulus. Changes no op.

import { FhecError } from '../../../ir/errors.js';
import type { Pass } from '../../pass.js';
import { requireParameters, setAttrs, type FheUnit } from '../pipeline/unit.js';
import { analyzePrecision, type PrecisionRequirement } from './precision.js';

export interface BudgetPrecisionOptions {
  'input-bound': number;
  'abs-error'?: number;
  bits?: number;
}

export const budgetPrecisionPass: Pass<FheUnit, BudgetPrecisionOptions> = {
  name: 'budget-precision',
  summary: 'bound each output\'s CKKS error (annotated precision.*); fail when one misses its requirement or overflows',
  reads: 'fhe',
  writes: 'fhe',
  options: [
    { name: 'input-bound', type: 'float', help: 'max |x| of every input', default: 1 },
    { name: 'abs-error', type: 'float', help: 'largest absolute error an output may have' },
    { name: 'bits', type: 'float', help: 'fewest bits of precision an output must keep' },
  ],
  run(unit, o) {
    const program = unit.program;
    if (!program.chain) throw new FhecError('budget-precision needs a managed program: run manage-scales first');
    const params = requireParameters(program, 'budget-precision');
    const inputs = program.ops.filter((op) => op.kind === 'input').map((op) => op.tensor!);
    const required: PrecisionRequirement | undefined =
      o['abs-error'] !== undefined || o.bits !== undefined ? { ...(o['abs-error'] !== undefined ? { absError: o['abs-error'] } : {}), ...(o.bits !== undefined ? { bits: o.bits } : {}) } : undefined;
    const report = analyzePrecision(program, { params, inputBounds: Object.fromEntries(inputs.map((t) => [t, o['input-bound']])), required });
    const attrs: Record<string, number> = {};
    for (const out of report.outputs) {
      attrs[`precision.${out.tensor}.error`] = Number(out.value.error.toPrecision(3));
      attrs[`precision.${out.tensor}.bits`] = Number(out.value.bits.toFixed(1));
    }
    setAttrs(program, attrs);
    if (report.overflows.length > 0) {
      const v = report.overflows[0]!;
      throw new FhecError(`budget-precision: %${v.value} overflows the modulus at level ${v.level} (it needs ${v.bits.toFixed(1)} bits, the modulus there has ${v.modulusBits})`);
    }
    if (report.shortfalls.length > 0) {
      const s = report.shortfalls[0]!;
      throw new FhecError(`budget-precision: output ${s.tensor} keeps ${s.value.bits.toFixed(1)} bits (error bound ${s.value.error.toExponential(2)}), short of ${required?.absError !== undefined ? `error ${required.absError}` : `${required?.bits} bits`}`);
    }
    const worst = Math.max(0, ...report.outputs.map((x) => x.value.error));
    const bits = Math.min(...report.outputs.map((x) => x.value.bits));
    return { changed: false, stats: { outputs: report.outputs.length, min_bits: Number(bits.toFixed(1)) }, notes: [], error: { maxAbs: worst, how: 'CKKS noise bound at failure probability 2^-20 (passes/fhe/analysis/precision.ts)' } };
  },
};
