// Float64 evaluation of an FHE program with no CKKS error at all: every op on plain slot vectors
// (rescale, mod_switch, relinearize and refresh leave the values as they are). It is the reference the
// debug measurement (runtime/debug/measure.ts) compares SEAL's decrypted intermediates against, and the
// source of per-value magnitude bounds for the precision pass.

import { FhecError } from '../errors.js';
import { packSlots, constantSlots } from './layout.js';
import type { FheProgram } from './types.js';

/** Slot vectors of every value (ciphertexts and plaintexts) by SSA name, plus the outputs' slots by tensor. */
export interface PlainEvaluation {
  values: Map<string, Float64Array>;
  outputs: Map<string, Float64Array>;
}

/** `tensors`: row-major [tokens, length] values per input tensor, packed with each input's layout. */
export function evaluatePlain(program: FheProgram, tensors: Record<string, ArrayLike<number>>): PlainEvaluation {
  const n = program.slots;
  const values = new Map<string, Float64Array>();
  const outputs = new Map<string, Float64Array>();
  const get = (name: string): Float64Array => {
    const v = values.get(name);
    if (!v) throw new FhecError(`%${name} is used before it is defined`);
    return v;
  };
  const zip = (a: Float64Array, b: Float64Array, f: (x: number, y: number) => number): Float64Array => {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = f(a[i]!, b[i]!);
    return out;
  };
  for (const op of program.ops) {
    const [a, b] = op.args.map((x) => get(x.name));
    let r: Float64Array;
    switch (op.kind) {
      case 'input': {
        const data = tensors[op.tensor!];
        if (!data) throw new FhecError(`missing input "${op.tensor}"`, { field: op.tensor });
        r = packSlots(op.layout!, n, data);
        break;
      }
      case 'output':
        outputs.set(op.tensor!, a!);
        continue;
      case 'encode': {
        const c = program.constants.get(op.constant!);
        if (!c) throw new FhecError(`unknown constant @${op.constant}`);
        r = constantSlots(c.data, n, c.name);
        break;
      }
      case 'add':
      case 'add_plain':
        r = zip(a!, b!, (x, y) => x + y);
        break;
      case 'sub':
        r = zip(a!, b!, (x, y) => x - y);
        break;
      case 'mul':
      case 'mul_plain':
        r = zip(a!, b!, (x, y) => x * y);
        break;
      case 'negate':
        r = a!.map((x) => -x);
        break;
      case 'rotate': {
        const s = ((op.step! % n) + n) % n;
        r = new Float64Array(n);
        for (let i = 0; i < n; i++) r[i] = a![(i + s) % n]!;
        break;
      }
      case 'relinearize':
      case 'rescale':
      case 'mod_switch':
      case 'refresh':
        r = a!;
        break;
    }
    values.set(op.result!.name, r);
  }
  return { values, outputs };
}

/** max |v| over the slots. */
export function maxAbs(v: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < v.length; i++) m = Math.max(m, Math.abs(v[i]!));
  return m;
}
