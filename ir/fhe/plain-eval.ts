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

export interface PlainEvaluationOptions {
  /** Called with every value as it is computed (its slots are not to be modified). */
  onValue?: (name: string, slots: Float64Array) => void;
  /**
   * Keep every value in the result (default true). With false, each value is dropped after its last use
   * and `values` comes back empty: a whole model's values no longer sit in memory at once.
   */
  keep?: boolean;
}

/** `tensors`: row-major [tokens, length] values per input tensor, packed with each input's layout. */
export function evaluatePlain(program: FheProgram, tensors: Record<string, ArrayLike<number>>, options: PlainEvaluationOptions = {}): PlainEvaluation {
  const n = program.slots;
  const keep = options.keep ?? true;
  const lastUse = new Map<string, number>();
  if (!keep) program.ops.forEach((op, i) => op.args.forEach((a) => lastUse.set(a.name, i)));
  const values = new Map<string, Float64Array>();
  const outputs = new Map<string, Float64Array>();
  const get = (name: string): Float64Array => {
    const v = values.get(name);
    if (!v) throw new FhecError(`%${name} is used before it is defined`);
    return v;
  };
  for (const [index, op] of program.ops.entries()) {
    const [a, b] = op.args.map((x) => get(x.name));
    if (!keep) for (const x of op.args) if (lastUse.get(x.name) === index) values.delete(x.name);
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
        r = new Float64Array(n);
        for (let i = 0; i < n; i++) r[i] = a![i]! + b![i]!;
        break;
      case 'sub':
        r = new Float64Array(n);
        for (let i = 0; i < n; i++) r[i] = a![i]! - b![i]!;
        break;
      case 'mul':
      case 'mul_plain':
        r = new Float64Array(n);
        for (let i = 0; i < n; i++) r[i] = a![i]! * b![i]!;
        break;
      case 'negate':
        r = a!.map((x) => -x);
        break;
      case 'rotate':
        r = rotateSlots(a!, op.step!);
        break;
      case 'relinearize':
      case 'rescale':
      case 'mod_switch':
      case 'refresh':
        r = a!;
        break;
    }
    options.onValue?.(op.result!.name, r);
    if (keep || lastUse.has(op.result!.name)) values.set(op.result!.name, r);
  }
  return { values, outputs };
}

/** max |v| over the slots. */
export function maxAbs(v: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < v.length; i++) m = Math.max(m, Math.abs(v[i]!));
  return m;
}

/** The slots of `a` rotated left by `step` (CKKS rotation: slot i takes slot i + step, cyclically). */
export function rotateSlots(a: Float64Array, step: number): Float64Array {
  const n = a.length;
  const s = ((step % n) + n) % n;
  const r = new Float64Array(n);
  r.set(a.subarray(s), 0);
  r.set(a.subarray(0, s), n - s);
  return r;
}
