// manage-scales{input-level=L}: types an unmanaged program against the CKKS chain of its ckks.*
// annotations (rescales, relinearizations, mod-switches and exact plaintext scales; manage-scales.ts).
// Inputs are encrypted at `input-level`, else the mgmt.input_level annotation, else the program's depth.

import { FhecError } from '../../../ir/errors.js';
import { fheChain } from '../../../ir/ckks/params.js';
import type { Pass } from '../../pass.js';
import { numberAttr, requireParameters, setAttrs, withoutAttributes, type FheUnit } from '../pipeline/unit.js';
import { manageScales } from './manage-scales.js';

export const manageScalesPass: Pass<FheUnit, { 'input-level'?: number }> = {
  name: 'manage-scales',
  summary: 'place rescales, relinearizations and mod-switches, and type every value with its level and scale',
  reads: 'fhe',
  writes: 'fhe',
  options: [{ name: 'input-level', type: 'int', help: 'level the inputs are encrypted at (default: mgmt.input_level, else the depth)' }],
  run(unit, o) {
    const program = unit.program;
    if (program.chain) throw new FhecError('manage-scales: the program is already managed (it has a chain)');
    const params = requireParameters(program, 'manage-scales');
    const inputLevel = o['input-level'] ?? numberAttr(program, 'mgmt.input_level', 'manage-scales');
    const managed = manageScales(withoutAttributes(program), { chain: fheChain(params), topScale: params.scale, inputLevel });
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
