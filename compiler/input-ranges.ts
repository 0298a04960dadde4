// The input ranges an arithmetic plan is compiled for. CKKS holds a value v at scale Δ as v·Δ modulo
// the modulus of its level: once |v|·Δ reaches half of it, SEAL decrypts a wrapped-around number with no
// error (the simulator notices; real encryption cannot). So a plan records the interval each encrypted
// input must lie in, the compiler proves with the precision pass's interval arithmetic that no
// ciphertext of the program can overflow for inputs in those intervals, and the client refuses inputs
// outside them before encrypting (compiler/fhe-run.ts).
//
// The ranges come from `--input-range [NAME=]LO,HI` (refused at compile if the modulus has no headroom
// for them) or, by default, the widest [-2^k, 2^k] (k an integer, -20 <= k <= 30) for which the proof
// holds on every input at once.

import { FhecError } from '../ir/errors.js';
import type { FheProgram } from '../ir/fhe/types.js';
import type { CkksParameters } from '../ir/ckks/params.js';
import type { PlanInterface } from '../passes/fhe/lower/interface.js';
import { analyzePrecision, type Overflow } from '../passes/fhe/analysis/precision.js';

export type InputRange = [number, number];
export type InputRanges = Record<string, InputRange>;

/** `--input-range` values as given: per input name, or '' for every input. */
export type DeclaredRanges = Record<string, InputRange>;

const FLAG = '--input-range';
const NUMBER = String.raw`[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?`;

/** Commander collector for repeatable `--input-range [NAME=]LO,HI`. */
export function collectInputRange(value: string, prev: DeclaredRanges): DeclaredRanges {
  const m = new RegExp(`^(?:([^=]+)=)?(${NUMBER}),(${NUMBER})$`).exec(value.trim());
  if (!m) throw new FhecError(`expects [NAME=]LO,HI (e.g. -8,8 or x=0,255), got '${value}'`, { field: FLAG });
  const [lo, hi] = [Number(m[2]), Number(m[3])];
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || lo > hi) throw new FhecError(`expects finite LO <= HI, got '${value}'`, { field: FLAG });
  const name = m[1]?.trim() ?? '';
  if (name in prev) throw new FhecError(`${name ? `input '${name}'` : 'the range for every input'} is given twice`, { field: FLAG });
  return { ...prev, [name]: [lo, hi] };
}

/** The ciphertexts' overflows for these input ranges (empty: the modulus has headroom for them). */
function rangeOverflows(program: FheProgram, params: CkksParameters, iface: PlanInterface, ranges: InputRanges): Overflow[] {
  const inputBounds: Record<string, number> = {};
  for (const p of iface.inputs) {
    const [lo, hi] = ranges[p.name]!;
    for (const c of p.ciphertexts) inputBounds[c.fhe] = Math.max(Math.abs(lo), Math.abs(hi));
  }
  return analyzePrecision(program, { params, inputBounds }).overflows;
}

export interface ProvedRanges {
  ranges: InputRanges;
  /** The default rule chose them (no --input-range). */
  defaulted: boolean;
}

/** The declared ranges checked against the modulus, or the default ones; `file` is the model, for errors. */
export function proveInputRanges(program: FheProgram, params: CkksParameters, iface: PlanInterface, declared: DeclaredRanges, file?: string): ProvedRanges {
  const names = iface.inputs.map((p) => p.name);
  for (const n of Object.keys(declared)) {
    if (n !== '' && !names.includes(n)) throw new FhecError(`'${n}' is not an encrypted input of the model (its inputs: ${names.join(', ')})`, { ...(file ? { file } : {}), field: FLAG });
  }
  const every = (r: (n: string) => InputRange): InputRanges => Object.fromEntries(names.map((n) => [n, r(n)]));
  if (Object.keys(declared).length > 0) {
    const missing = names.filter((n) => !(n in declared) && !('' in declared));
    if (missing.length) throw new FhecError(`no range for input(s) ${missing.join(', ')} (give NAME=LO,HI for each, or LO,HI for all)`, { ...(file ? { file } : {}), field: FLAG });
    const ranges = every((n) => declared[n] ?? declared['']!);
    const over = rangeOverflows(program, params, iface, ranges);
    if (over.length) {
      const o = over[0]!;
      throw new FhecError(
        `the modulus has no headroom for these ranges: %${o.value} = ${o.op} at level ${o.level} could reach 2^${o.bits.toFixed(1)} ` +
          `against a ${o.modulusBits.toFixed(1)}-bit modulus (narrow the ranges, or scale the inputs down)`,
        { ...(file ? { file } : {}), field: FLAG },
      );
    }
    return { ranges, defaulted: false };
  }
  // Default: the widest power of two that fits (overflow grows with the bound: bisect on k).
  const fits = (k: number) => rangeOverflows(program, params, iface, every(() => [-(2 ** k), 2 ** k])).length === 0;
  let lo = -20;
  let hi = 30;
  if (!fits(lo)) {
    throw new FhecError(`the modulus has no headroom even for inputs within [-2^${-lo}, 2^${-lo}]`, { ...(file ? { file } : {}), field: 'parameters' });
  }
  if (fits(hi)) lo = hi;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return { ranges: every(() => [-(2 ** lo), 2 ** lo]), defaulted: true };
}

/** Refuses input values outside their plan's ranges (before anything is encrypted), naming the input and element. */
export function checkInputRanges(ranges: InputRanges, inputs: Record<string, { data: ArrayLike<number> }>, file?: string): void {
  for (const [name, [lo, hi]] of Object.entries(ranges)) {
    const t = inputs[name];
    if (!t) continue;
    for (let i = 0; i < t.data.length; i++) {
      const v = t.data[i]!;
      if (!(v >= lo && v <= hi)) {
        throw new FhecError(
          `element ${i} is ${v}, outside the range [${lo}, ${hi}] the plan was compiled for (encrypted, it would wrap around the modulus ` +
            'and decrypt to a wrong number; recompile with a wider --input-range if the modulus has room)',
          { ...(file ? { file } : {}), field: `inputs.${name}` },
        );
      }
    }
  }
}
