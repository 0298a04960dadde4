// State of one graph lowering: the FHE builder, what each graph value has become, the graph inputs'
// ciphertexts (made on demand, in whatever packing their consumers need: the client packs and encrypts
// them, so a graph input never needs a rotation), and the operation counts.

import { FhecError } from '../../../ir/errors.js';
import type { FheBuilder } from '../../../ir/fhe/builder.js';
import type { FheValue, SlotLayout } from '../../../ir/fhe/types.js';
import type { Tensor } from '../../../ir/tensor.js';
import { gather, type GatherCost } from './gather.js';
import { holdsToRuns, type TensorPacking } from './interface.js';
import { satisfies, ZERO, type Block, type Holds, type Want } from './placement.js';

/** A value computed under encryption: its ciphertexts and what they hold. */
export interface EncOperand {
  kind: 'enc';
  dims: number[];
  blocks: Block[];
}

/**
 * A view of a graph input (possibly reshaped or transposed): element i of the view is element
 * source[i] of the input. It is encrypted in the packing each consumer asks for.
 */
export interface InputOperand {
  kind: 'input';
  dims: number[];
  input: string;
  source: Int32Array;
}

export interface PlainOperand {
  kind: 'plain';
  tensor: Tensor;
}

export type Operand = EncOperand | InputOperand | PlainOperand;

export function dimsOf(x: Operand): number[] {
  return x.kind === 'plain' ? [...x.tensor.dims] : x.dims;
}

/** Every FHE input/output carries the whole slot vector; the plan interface says which slot holds what. */
export function rawLayout(slots: number): SlotLayout {
  return { length: slots, tokens: 1, stride: slots, period: slots, copies: 1 };
}

export class LowerContext {
  readonly slots: number;
  readonly cost: GatherCost & { ctMultiplications: number } = { rotations: 0, plainMultiplications: 0, ctMultiplications: 0 };
  readonly inputs = new Map<string, TensorPacking>();
  /** How the current node was lowered and what it cost (lowerings append, the driver collects per node). */
  readonly notes: string[] = [];
  private readonly inputCache = new Map<string, Block>();
  private readonly fheNames = { input: new Set<string>(), output: new Set<string>() };

  constructor(
    readonly b: FheBuilder,
    inputs: { name: string; dims: number[] }[],
  ) {
    this.slots = b.slots;
    for (const v of inputs) this.inputs.set(v.name, { name: v.name, dtype: 'float32', dims: v.dims, ciphertexts: [] });
  }

  /** A fresh FHE input (or output) name for a ciphertext of `tensor`: the name, then name#1, name#2, ... */
  fheName(tensor: string, space: 'input' | 'output' = 'input'): string {
    const used = this.fheNames[space];
    let name = tensor;
    for (let i = 1; used.has(name); i++) name = `${tensor}#${i}`;
    used.add(name);
    return name;
  }

  /** A ciphertext whose slots meet `want` (element indices of the operand's own flat order). */
  cipher(x: EncOperand | InputOperand, want: Want): Block {
    if (x.kind === 'input') return this.inputCipher(x, want);
    for (const blk of x.blocks) if (satisfies(blk.holds, want)) return blk;
    return gather(this.b, x.blocks, want, this.cost);
  }

  private inputCipher(x: InputOperand, want: Want): Block {
    const slots = this.slots;
    // Unwanted slots are encrypted as zeros; slots are labelled by the view's elements.
    const holds: Holds = new Int32Array(slots);
    const packed: Holds = new Int32Array(slots);
    for (let s = 0; s < slots; s++) {
      const w = want[s]!;
      holds[s] = w >= 0 ? w : ZERO;
      packed[s] = w >= 0 ? x.source[w]! : ZERO;
    }
    const runs = holdsToRuns(packed);
    const key = `${x.input}|${runs.join(',')}`;
    const cached = this.inputCache.get(key);
    if (cached) return { ct: cached.ct, holds };
    const binding = this.inputs.get(x.input)!;
    const fhe = this.fheName(x.input);
    const ct = this.b.input(fhe, rawLayout(slots), undefined, fhe.replace(/[^A-Za-z0-9_.]/g, '_'));
    binding.ciphertexts.push({ fhe, runs });
    this.inputCache.set(key, { ct, holds: packed });
    return { ct, holds };
  }

  /**
   * A plaintext of `values` at the wanted slots (0 elsewhere), encoded for this use; `scale` multiplies
   * every value (Gemm's alpha/beta folded into constants).
   */
  plain(x: PlainOperand, want: Want, scale = 1): { pt: FheValue; holds: Holds } {
    const slots = this.slots;
    const values = new Float64Array(slots);
    const holds: Holds = new Int32Array(slots);
    for (let s = 0; s < slots; s++) {
      const w = want[s]!;
      const v = w >= 0 ? scale * x.tensor.data[w]! : 0;
      values[s] = v;
      // A plaintext slot that is 0 makes products zero there; it is labelled by the wanted element otherwise.
      holds[s] = w >= 0 ? w : ZERO;
    }
    return { pt: this.b.encode(this.b.constant({ kind: 'dense', values }, 'w')), holds };
  }

  rotate(x: FheValue, step: number): FheValue {
    this.cost.rotations++;
    return this.b.rotate(x, step);
  }

  mulPlain(x: FheValue, p: FheValue): FheValue {
    this.cost.plainMultiplications++;
    return this.b.mulPlain(x, p);
  }

  mulScalar(x: FheValue, value: number): FheValue {
    this.cost.plainMultiplications++;
    return this.b.mulConst(x, { kind: 'splat', value }, 'k');
  }

  mul(x: FheValue, y: FheValue): FheValue {
    this.cost.ctMultiplications++;
    return this.b.mul(x, y);
  }
}

export function notConstantOnly(node: string): FhecError {
  return new FhecError('node computes only on constants; constant folding should have removed it', { node });
}
