// Verifier for FHE programs: SSA well-formedness, constants, layouts, and the typing rules recomputed
// from scratch (so a parsed or hand-edited program with a level/scale mismatch is rejected before
// anything runs). `managed: true` also demands concrete types everywhere and a modulus chain.

import { FhecError } from '../errors.js';
import { checkLayout } from './layout.js';
import { inferResultType } from './typing.js';
import { scalesClose, type FheProgram, type FheType, type FheValue } from './types.js';

export interface FheVerifyOptions {
  managed?: boolean;
}

function sameType(a: FheType, b: FheType): boolean {
  if (a.kind !== b.kind || a.level !== b.level) return false;
  if ((a.scale === undefined) !== (b.scale === undefined)) return false;
  if (a.scale !== undefined && !scalesClose(a.scale, b.scale!)) return false;
  return a.kind === 'pt' || a.size === (b as typeof a).size;
}

export function showType(t: FheType): string {
  const inner = t.level === undefined ? '?' : `${t.level}, ${t.scale}`;
  return t.kind === 'ct' && t.size === 3 ? `ct3<${inner}>` : `${t.kind}<${inner}>`;
}

export function verifyFhe(program: FheProgram, options: FheVerifyOptions = {}): void {
  const defined = new Map<string, FheValue>();
  const inputs = new Set<string>();
  const outputs = new Set<string>();
  if (options.managed && !program.chain) throw new FhecError('managed program has no modulus chain');
  if (program.chain && program.chain.ringDegree !== program.slots * 2) {
    throw new FhecError(`ring degree ${program.chain.ringDegree} does not match ${program.slots} slots`);
  }
  for (const c of program.constants.values()) {
    if (c.data.kind === 'dense' && c.data.values.length > program.slots) {
      throw new FhecError(`constant @${c.name} has more values than slots`);
    }
  }
  for (const op of program.ops) {
    const where = { node: op.result ? `%${op.result.name} = ${op.kind}` : op.kind };
    for (const a of op.args) {
      const d = defined.get(a.name);
      if (!d) throw new FhecError(`%${a.name} is used before it is defined`, where);
      if (d !== a && !sameType(d.type, a.type)) throw new FhecError(`%${a.name} is used with another type`, where);
    }
    if (op.kind === 'encode' && !program.constants.has(op.constant ?? '')) {
      throw new FhecError(`unknown constant @${op.constant}`, where);
    }
    if (op.layout) checkLayout(op.layout, program.slots);
    if (op.kind === 'input') {
      if (inputs.has(op.tensor!)) throw new FhecError(`input "${op.tensor}" is declared twice`, where);
      inputs.add(op.tensor!);
    }
    if (op.kind === 'output') {
      if (outputs.has(op.tensor!)) throw new FhecError(`output "${op.tensor}" is written twice`, where);
      outputs.add(op.tensor!);
    }
    if (op.factor !== undefined && (op.kind !== 'refresh' || !Number.isFinite(op.factor) || !(op.factor > 0))) {
      throw new FhecError(op.kind !== 'refresh' ? `only refresh takes a factor, not ${op.kind}` : `refresh factor ${op.factor} is not a positive finite number (it divides the masked scale)`, { node: `%${op.result?.name ?? '?'} = ${op.kind}` });
    }
    if (op.kind === 'rotate' && op.step !== undefined && Math.abs(op.step) >= program.slots) {
      throw new FhecError(`rotation step ${op.step} is not below the slot count ${program.slots}`, where);
    }
    const type = inferResultType(op, program.chain, op.result?.type);
    if (op.kind === 'output') continue;
    if (!op.result || !type) throw new FhecError('op has no result', where);
    if (!sameType(type, op.result.type)) {
      throw new FhecError(`declared type ${showType(op.result.type)} but the operands give ${showType(type)}`, where);
    }
    if (options.managed && (op.result.type.level === undefined || op.result.type.scale === undefined)) {
      throw new FhecError('unmanaged type in a managed program', where);
    }
    if (defined.has(op.result.name)) throw new FhecError(`%${op.result.name} is defined twice`, where);
    defined.set(op.result.name, op.result);
  }
}
