// manage-scales{input-level=L,refresh-products=priced|always|never}: types an unmanaged program against the CKKS chain of its ckks.*
// annotations (rescales, relinearizations, mod-switches and exact plaintext scales; manage-scales.ts).
// Inputs are encrypted at `input-level`, else the mgmt.input_level annotation, else the program's depth.

import { FhecError } from '../../../ir/errors.js';
import type { Pass } from '../../pass.js';
import { attr, costTableOf, numberAttr, requireParameters, setAttrs, withoutAttributes, type FheUnit } from '../pipeline/unit.js';
import { fheChain, topLevel, type CkksParameters } from '../../../ir/ckks/params.js';
import type { FheProgram } from '../../../ir/fhe/types.js';
import { manageScales } from './manage-scales.js';
import { refreshProductsRule } from './refresh-products.js';

/** manage-scales' refresh-products option as manageScales takes it; 'priced' reads the cost table and link select-parameters used. */
function refreshProductsOption(unit: FheUnit, program: FheProgram, params: CkksParameters, mode: string): boolean | ((level: number) => boolean) {
  if (mode === 'always') return true;
  if (mode === 'never') return false;
  if (mode !== 'priced') throw new FhecError(`manage-scales: refresh-products must be 'priced', 'always' or 'never', got '${mode}'`);
  const costs = attr(program, 'select.costs');
  const link = attr(program, 'select.link');
  return refreshProductsRule(costTableOf(unit, costs === undefined ? 'default' : String(costs), link === undefined ? undefined : String(link)), params.ringDegree, topLevel(params));
}

export const manageScalesPass: Pass<FheUnit, { 'input-level'?: number; 'refresh-products'?: string }> = {
  name: 'manage-scales',
  summary: 'place rescales, relinearizations and mod-switches, and type every value with its level and scale',
  reads: 'fhe',
  writes: 'fhe',
  options: [
    { name: 'input-level', type: 'int', help: 'level the inputs are encrypted at (default: mgmt.input_level, else the depth)' },
    {
      name: 'refresh-products',
      type: 'string',
      help: "refresh a ct x ct product only refreshes use as it is (size 3, unrescaled: no relinearization or rescale on the evaluator): 'priced' (where the cost table's link carries the bigger request for less than the work saved), 'always' or 'never'",
      default: 'priced',
    },
  ],
  run(unit, o) {
    const program = unit.program;
    if (program.chain) throw new FhecError('manage-scales: the program is already managed (it has a chain)');
    const params = requireParameters(program, 'manage-scales');
    const inputLevel = o['input-level'] ?? numberAttr(program, 'mgmt.input_level', 'manage-scales');
    const managed = manageScales(withoutAttributes(program), { chain: fheChain(params), topScale: params.scale, inputLevel, refreshProducts: refreshProductsOption(unit, program, params, o['refresh-products'] ?? 'priced') });
    managed.attributes = { ...(program.attributes ?? {}) };
    setAttrs(managed, { 'mgmt.input_level': inputLevel ?? managed.ops.find((op) => op.kind === 'input')?.result?.type.level });
    unit.program = managed;
    const count = (k: string) => managed.ops.filter((op) => op.kind === k).length;
    return {
      changed: true,
      stats: { rescales: count('rescale'), relinearizations: count('relinearize'), mod_switches: count('mod_switch') },
      notes: [],
      error: { maxAbs: 0, how: 'exact: rescale rounding is CKKS noise, accounted by budget-precision' },
    };
  },
};
