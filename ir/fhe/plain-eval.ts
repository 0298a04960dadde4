// Float64 evaluation of an FHE program with no CKKS error at all: every op on plain slot vectors
// (rescale, mod_switch, relinearize and refresh leave the values as they are). It is the reference the
// debug measurement (runtime/debug/measure.ts) compares SEAL's decrypted intermediates against, and the
// source of per-value magnitude bounds for the precision pass and the refresh bounds.
//
// One core evaluates a batch of runs (input sets) op by op: a plaintext constant is built once per op
// for all runs, and in streaming mode (keep: false) slot vectors freed at their last use are reused,
// which keeps a model's evaluation free of large-object garbage (the compile's refresh bounds evaluate
// each lowering on dozens of calibration windows).

import { FhecError } from '../errors.js';
import { packSlots, constantSlots } from './layout.js';
import type { FheOp, FheProgram } from './types.js';

/** Slot vectors of every value (ciphertexts and plaintexts) by SSA name, plus the outputs' slots by tensor. */
export interface PlainEvaluation {
  values: Map<string, Float64Array>;
  outputs: Map<string, Float64Array>;
}

export interface PlainEvaluationOptions {
  /**
   * Called with every value as it is computed (its slots are not to be modified; with keep: false they
   * are only valid during the call, as their storage is reused after the value's last use).
   */
  onValue?: (name: string, slots: Float64Array) => void;
  /**
   * Keep every value in the result (default true). With false, each value is dropped after its last use
   * and `values` comes back empty: a whole model's values no longer sit in memory at once.
   */
  keep?: boolean;
}

/** `tensors`: row-major [tokens, length] values per input tensor, packed with each input's layout. */
export function evaluatePlain(program: FheProgram, tensors: Record<string, ArrayLike<number>>, options: PlainEvaluationOptions = {}): PlainEvaluation {
  const { onValue } = options;
  const batch = evaluatePlainRuns(program, [tensors], { keep: options.keep, ...(onValue ? { onValue: (name, runs) => onValue(name, runs[0]!) } : {}) });
  return { values: new Map([...batch.values].map(([k, v]) => [k, v[0]!])), outputs: new Map([...batch.outputs].map(([k, v]) => [k, v[0]!])) };
}

export interface PlainRunsOptions {
  /** Every value as it is computed, one slot vector per run (same validity as PlainEvaluationOptions.onValue). */
  onValue?: (name: string, slots: readonly Float64Array[]) => void;
  /**
   * Every value's max |x| over the slots of all runs, as it is computed. The arithmetic finds it in the
   * loop that writes the value, and ops that keep or permute their argument's slots (rescale, refresh,
   * rotate, ...) take their argument's: a second pass over the slots doubled the refresh bounds' time.
   */
  onMaxAbs?: (name: string, maxAbs: number) => void;
  keep?: boolean;
}

/** evaluatePlain over several input sets at once: values and outputs hold one slot vector per run. */
export function evaluatePlainRuns(
  program: FheProgram,
  runs: readonly Record<string, ArrayLike<number>>[],
  options: PlainRunsOptions = {},
): { values: Map<string, Float64Array[]>; outputs: Map<string, Float64Array[]> } {
  const n = program.slots;
  const keep = options.keep ?? true;
  const lastUse = new Map<string, number>();
  if (!keep) program.ops.forEach((op, i) => op.args.forEach((a) => lastUse.set(a.name, i)));
  const values = new Map<string, Float64Array[]>();
  const outputs = new Map<string, Float64Array[]>();
  const store = keep ? undefined : new SlotStore(n);
  const get = (name: string): Float64Array[] => {
    const v = values.get(name);
    if (!v) throw new FhecError(`%${name} is used before it is defined`);
    return v;
  };
  const fresh = (): Float64Array => store?.take() ?? new Float64Array(n);
  const { onMaxAbs } = options;
  // Max |x| of the live values, only when asked for.
  const maxima = onMaxAbs ? new Map<string, number>() : undefined;
  for (const [index, op] of program.ops.entries()) {
    const [a, b] = op.args.map((x) => get(x.name));
    if (op.kind === 'output') {
      outputs.set(op.tensor!, a!);
      store?.pin(a!);
    } else {
      const { slots: r, max } = evaluateOp(op, a, b, runs, program, n, fresh, maxima ? maxima.get(op.args[0]?.name ?? '') : 0);
      const name = op.result!.name;
      options.onValue?.(name, r);
      if (maxima) {
        onMaxAbs!(name, max);
        if (keep || lastUse.has(name)) maxima.set(name, max);
      }
      if (keep || lastUse.has(name)) {
        values.set(name, r);
        store?.hold(r);
      } else store?.hold(r, 0);
    }
    // Arguments go after the result is computed: a freed vector may be the next op's result.
    if (!keep) {
      for (const x of op.args) {
        if (lastUse.get(x.name) !== index || !values.has(x.name)) continue;
        store!.release(values.get(x.name)!);
        values.delete(x.name);
        maxima?.delete(x.name);
      }
    }
  }
  return { values, outputs };
}

/** One op over all runs: the result's slot vectors and their max |x| (`argMax`: the first argument's, if kept). */
function evaluateOp(
  op: FheOp,
  a: Float64Array[] | undefined,
  b: Float64Array[] | undefined,
  runs: readonly Record<string, ArrayLike<number>>[],
  program: FheProgram,
  n: number,
  fresh: () => Float64Array,
  argMax: number | undefined,
): { slots: Float64Array[]; max: number } {
  let max = 0;
  const binary = (loop: (r: Float64Array, x: Float64Array, y: Float64Array) => number): Float64Array[] =>
    a!.map((x, k) => {
      const r = fresh();
      max = Math.max(max, loop(r, x, b![k]!));
      return r;
    });
  switch (op.kind) {
    case 'input': {
      const slots = runs.map((tensors) => {
        const data = tensors[op.tensor!];
        if (!data) throw new FhecError(`missing input "${op.tensor}"`, { field: op.tensor });
        return packSlots(op.layout!, n, data);
      });
      for (const v of slots) max = Math.max(max, maxAbs(v));
      return { slots, max };
    }
    case 'encode': {
      const c = program.constants.get(op.constant!);
      if (!c) throw new FhecError(`unknown constant @${op.constant}`);
      const slots = constantSlots(c.data, n, c.name, fresh());
      return { slots: runs.map(() => slots), max: maxAbs(slots) };
    }
    case 'add':
    case 'add_plain':
      return { slots: binary(add), max };
    case 'sub':
      return { slots: binary(sub), max };
    case 'mul':
    case 'mul_plain':
      return { slots: binary(mul), max };
    case 'negate':
      return { slots: a!.map((x) => negate(fresh(), x)), max: argMax ?? 0 };
    case 'rotate':
      return { slots: a!.map((x) => rotateSlots(x, op.step!, fresh())), max: argMax ?? 0 };
    case 'refresh':
      if (op.factor !== undefined) {
        const f = op.factor;
        const slots = a!.map((x) => {
          const r = fresh();
          for (let i = 0; i < r.length; i++) r[i] = x[i]! * f;
          max = Math.max(max, maxAbs(r));
          return r;
        });
        return { slots, max };
      }
      return { slots: a!, max: argMax ?? 0 };
    case 'relinearize':
    case 'rescale':
    case 'mod_switch':
      return { slots: a!, max: argMax ?? 0 };
    default:
      throw new FhecError(`plain evaluation: unknown op kind '${op.kind}'`);
  }
}

// One loop per kind (a shared loop taking the arithmetic as a callback is several times slower); each
// returns the result's max |x|, found while it is written (NaN once any slot is NaN, as maxAbs).
function add(r: Float64Array, a: Float64Array, b: Float64Array): number {
  let m = 0;
  for (let i = 0; i < r.length; i++) {
    const x = a[i]! + b[i]!;
    r[i] = x;
    const y = x < 0 ? -x : x;
    if (y > m || y !== y) m = y;
  }
  return m;
}
function sub(r: Float64Array, a: Float64Array, b: Float64Array): number {
  let m = 0;
  for (let i = 0; i < r.length; i++) {
    const x = a[i]! - b[i]!;
    r[i] = x;
    const y = x < 0 ? -x : x;
    if (y > m || y !== y) m = y;
  }
  return m;
}
function mul(r: Float64Array, a: Float64Array, b: Float64Array): number {
  let m = 0;
  for (let i = 0; i < r.length; i++) {
    const x = a[i]! * b[i]!;
    r[i] = x;
    const y = x < 0 ? -x : x;
    if (y > m || y !== y) m = y;
  }
  return m;
}
function negate(r: Float64Array, a: Float64Array): Float64Array {
  for (let i = 0; i < r.length; i++) r[i] = -a[i]!;
  return r;
}

/**
 * Slot vectors of a streaming evaluation, counted by how many live values (or outputs) hold them: ops
 * that leave values as they are (rescale, refresh, ...) share their argument's vector, and an encoded
 * constant is one vector for all runs. A vector nobody holds is reused.
 */
class SlotStore {
  private readonly holders = new Map<Float64Array, number>();
  private readonly free: Float64Array[] = [];
  constructor(private readonly n: number) {}
  take(): Float64Array | undefined {
    return this.free.pop();
  }
  /** `count`: 1 for a value kept until its last use, 0 for one nobody reads again. */
  hold(vs: readonly Float64Array[], count = 1): void {
    for (const v of vs) this.holders.set(v, (this.holders.get(v) ?? 0) + count);
    if (count === 0) this.release(vs, 0);
  }
  /** Outputs are returned to the caller: never reused. */
  pin(vs: readonly Float64Array[]): void {
    for (const v of vs) this.holders.set(v, Infinity);
  }
  release(vs: readonly Float64Array[], count = 1): void {
    for (const v of vs) {
      const left = (this.holders.get(v) ?? 0) - count;
      if (left > 0) {
        this.holders.set(v, left);
        continue;
      }
      if (!this.holders.has(v)) continue; // already freed (the same vector twice in one list)
      this.holders.delete(v);
      if (v.length === this.n) this.free.push(v);
    }
  }
}

/** max |v| over the slots. */
export function maxAbs(v: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < v.length; i++) m = Math.max(m, Math.abs(v[i]!));
  return m;
}

/** The slots of `a` rotated left by `step` (CKKS rotation: slot i takes slot i + step, cyclically). */
export function rotateSlots(a: Float64Array, step: number, into?: Float64Array): Float64Array {
  const n = a.length;
  const s = ((step % n) + n) % n;
  const r = into ?? new Float64Array(n);
  r.set(a.subarray(s), 0);
  r.set(a.subarray(0, s), n - s);
  return r;
}
