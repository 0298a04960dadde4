// Textual form of FHE programs. Numbers print in JavaScript's shortest round-trip form, so
// parse(print(p)) reproduces every scale and constant bit for bit.
//
//   fhe.program @name slots=4096 {
//     chain N=8192 primes=[1152921504606830593, 1099511922689]
//     attr mgmt.refresh_levels = 9
//     const @w = dense [0.5, -1]
//     const @big = elided 4096          (printed with elideConstantsAbove: values left out)
//     %x = input "x" layout(64, 1, 4096, 64, 64) : ct<1, 1099511627776>
//     %0 = encode @w : pt<1, 1099511627776>
//     %1 = mul_plain %x, %0 : ct<1, 1.2089258196146292e+24>
//     %2 = rescale %1 : ct<0, 1099511627776.0002>
//     %3 = rotate %2 by 3 : ct<0, 1099511627776.0002>
//     output "y" %3 layout(64, 1, 4096, 4096, 1)
//   }

import { GEOMETRY_FIELDS } from './diagonal.js';
import { showType } from './verify.js';
import type { FheConstantData, FheOp, FheProgram, SlotLayout } from './types.js';

export function formatNumber(x: number): string {
  return Object.is(x, -0) ? '-0' : String(x);
}

export function layoutText(l: SlotLayout): string {
  return `layout(${l.length}, ${l.tokens}, ${l.stride}, ${l.period}, ${l.copies})`;
}

function constantText(d: FheConstantData, elideAbove: number): string {
  if (d.kind === 'splat') return `splat ${formatNumber(d.value)}`;
  if (d.kind === 'weights') return `weights ${d.offset} ${d.length}`;
  if (d.kind === 'elided') return `elided ${d.length}`;
  if (d.kind === 'diagonal') return `diagonal ${d.matrix.id} [${GEOMETRY_FIELDS.map((f) => d.geometry[f]).join(', ')}]`;
  if (d.values.length > elideAbove) return `elided ${d.values.length}`;
  return `dense [${Array.from(d.values, formatNumber).join(', ')}]`;
}

/**
 * An op's line without its result type: `output "y" %v layout(...)` for outputs, `%r = kind args` for
 * the rest. Shared by the printer and by code emitters that annotate ops.
 */
export function opHead(op: FheOp): string {
  const args = op.args.map((a) => `%${a.name}`).join(', ');
  if (op.kind === 'output') return `output ${JSON.stringify(op.tensor)} ${args} ${layoutText(op.layout!)}`;
  let rhs: string;
  if (op.kind === 'input') rhs = `input ${JSON.stringify(op.tensor)} ${layoutText(op.layout!)}`;
  else if (op.kind === 'encode') rhs = `encode @${op.constant}`;
  else if (op.kind === 'rotate') rhs = `rotate ${args} by ${op.step}`;
  else if (op.kind === 'refresh' && op.factor !== undefined) rhs = `refresh ${args} times ${formatNumber(op.factor)}`;
  else rhs = `${op.kind} ${args}`;
  return `%${op.result!.name} = ${rhs}`;
}

function opText(op: FheOp): string {
  return op.kind === 'output' ? opHead(op) : `${opHead(op)} : ${showType(op.result!.type)}`;
}

export interface PrintOptions {
  /** Print dense constants with more values than this as `elided N` (default: print every value). */
  elideConstantsAbove?: number;
}

export function printFhe(program: FheProgram, options: PrintOptions = {}): string {
  const elideAbove = options.elideConstantsAbove ?? Infinity;
  const lines = [`fhe.program @${program.name} slots=${program.slots} {`];
  if (program.chain) {
    lines.push(`  chain N=${program.chain.ringDegree} primes=[${program.chain.primes.map(String).join(', ')}]`);
  }
  for (const [k, v] of Object.entries(program.attributes ?? {})) {
    lines.push(`  attr ${k} = ${typeof v === 'number' ? formatNumber(v) : JSON.stringify(v)}`);
  }
  for (const c of program.constants.values()) lines.push(`  const @${c.name} = ${constantText(c.data, elideAbove)}`);
  for (const op of program.ops) lines.push(`  ${opText(op)}`);
  lines.push('}');
  return lines.join('\n') + '\n';
}
