// The tensor interface of a compiled plan: for each graph input and output, its name, dtype and dims,
// and which ciphertexts carry it, slot by slot. `fhec run` encrypts tensors by name with it and decrypts
// the outputs back into tensors. A slot map is stored as runs [slot, element, count, step]: slots
// slot..slot+count-1 hold elements element, element+step, ... (step 0 = one element replicated).

import { FhecError } from '../../../ir/errors.js';
import { numel } from '../../../ir/tensor.js';
import type { Holds } from './placement.js';

export interface CiphertextPacking {
  /** The FHE program's input/output name of this ciphertext. */
  fhe: string;
  /** Flattened runs [slot, element, count, step, ...]. */
  runs: number[];
}

export interface TensorPacking {
  name: string;
  dtype: 'float32';
  dims: number[];
  ciphertexts: CiphertextPacking[];
}

export interface PlanInterface {
  inputs: TensorPacking[];
  outputs: TensorPacking[];
}

/**
 * Runs of the slots that hold elements (>= 0). With `firstOnly`, an element already listed (in this
 * map or in `seen`) is skipped: outputs are read from one slot each.
 */
export function holdsToRuns(holds: Holds, seen?: Set<number>): number[] {
  const runs: number[] = [];
  const keep = (s: number): boolean => holds[s]! >= 0 && !(seen && seen.has(holds[s]!));
  let s = 0;
  while (s < holds.length) {
    if (!keep(s)) {
      s++;
      continue;
    }
    const e0 = holds[s]!;
    seen?.add(e0);
    let count = 1;
    let step = 0;
    if (s + 1 < holds.length && keep(s + 1)) {
      step = holds[s + 1]! - e0;
      while (s + count < holds.length && keep(s + count) && holds[s + count] === e0 + count * step) {
        seen?.add(holds[s + count]!);
        count++;
      }
    }
    runs.push(s, e0, count, step);
    s += count;
  }
  return runs;
}

function eachRun(runs: number[], f: (slot: number, elem: number) => void): void {
  if (runs.length % 4 !== 0) throw new FhecError('slot runs must come in fours [slot, element, count, step]');
  for (let i = 0; i < runs.length; i += 4) {
    const [slot, elem, count, step] = [runs[i]!, runs[i + 1]!, runs[i + 2]!, runs[i + 3]!];
    for (let j = 0; j < count; j++) f(slot + j, elem + j * step);
  }
}

/** The slot vector a client encrypts for one input ciphertext (unlisted slots are 0). */
export function packCiphertext(runs: number[], slots: number, data: ArrayLike<number>, what = 'input'): Float64Array {
  const out = new Float64Array(slots);
  eachRun(runs, (s, e) => {
    if (s < 0 || s >= slots || e < 0 || e >= data.length) throw new FhecError(`${what}: slot map refers to slot ${s} / element ${e} out of range`);
    out[s] = data[e]!;
  });
  return out;
}

/** Reads a tensor's elements back from its decrypted ciphertexts (slot vectors by FHE name). */
export function unpackTensor(p: TensorPacking, slotsOf: (fhe: string) => ArrayLike<number>): Float64Array {
  const n = numel(p.dims);
  const out = new Float64Array(n);
  const filled = new Uint8Array(n);
  for (const c of p.ciphertexts) {
    const v = slotsOf(c.fhe);
    eachRun(c.runs, (s, e) => {
      if (s < 0 || s >= v.length || e < 0 || e >= n) throw new FhecError(`output '${p.name}': slot map refers to slot ${s} / element ${e} out of range`);
      if (filled[e]) return;
      out[e] = v[s]!;
      filled[e] = 1;
    });
  }
  const missing = filled.indexOf(0);
  if (missing >= 0) throw new FhecError(`output '${p.name}': element ${missing} is in no ciphertext`);
  return out;
}
