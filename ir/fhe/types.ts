// The FHE IR: ciphertext-level SSA for CKKS. One op per homomorphic operation, in program order.
// Types carry the level (index of the last data prime still present, 0 = cannot rescale) and the exact
// scale (a double, computed with the same arithmetic SEAL uses, so the verifier agrees with SEAL).
// A program is "managed" when every type is concrete and every rescale/relinearize is explicit; the
// lowerings build unmanaged programs (level/scale unknown) and passes/fhe/manage.ts makes them managed.

import type { DiagonalGeometry, LinearMatrix } from './diagonal.js';
import { FhecError } from '../errors.js';

/** Ciphertext type. level/scale are undefined in an unmanaged program. size is 2, or 3 after ct x ct. */
export interface CtType {
  kind: 'ct';
  level?: number;
  scale?: number;
  size: number;
}

/** Plaintext type: a constant encoded at a level and scale (decided by the management pass). */
export interface PtType {
  kind: 'pt';
  level?: number;
  scale?: number;
}

export type FheType = CtType | PtType;

/**
 * How a tensor of `tokens` rows of `length` elements sits in the slots: element j of token t
 * is at slots t*stride + r*period + j for every copy r < copies (copies > 1 = replicated).
 */
export interface SlotLayout {
  length: number;
  tokens: number;
  stride: number;
  period: number;
  copies: number;
}

/** A plaintext vector of slot values, encoded lazily where it is used. */
export type FheConstantData =
  | { kind: 'splat'; value: number }
  | { kind: 'dense'; values: Float64Array }
  /**
   * A range of the plan's weight sidecar (float64 little-endian), resolved when the plan is loaded.
   * `source`: cost estimates only (lowered with weights: 'shapes'), the model weight the values would be
   * computed from; such a program is priced, never written or run.
   */
  | { kind: 'weights'; offset: number; length: number; source?: string }
  /**
   * Diagonal of a matrix-vector product whose matrix references a model weight (ir/fhe/diagonal.ts):
   * built from the weight's bytes where it is used (`fhec compile --stream-weights`).
   */
  | { kind: 'diagonal'; matrix: LinearMatrix; geometry: DiagonalGeometry }
  /**
   * Values left out of printed IR (as MLIR elides large elements attributes): structure-only passes
   * (refresh placement, scale management, costs) run on it; evaluating it is an error.
   */
  | { kind: 'elided'; length: number };

export interface FheConstant {
  name: string;
  data: FheConstantData;
}

export type FheOpKind =
  | 'input'
  | 'output'
  | 'encode'
  | 'add'
  | 'sub'
  | 'negate'
  | 'add_plain'
  | 'mul_plain'
  | 'mul'
  | 'relinearize'
  | 'rescale'
  | 'mod_switch'
  | 'rotate'
  | 'refresh';

export interface FheValue {
  /** SSA name without the leading %. */
  name: string;
  type: FheType;
}

export interface FheOp {
  kind: FheOpKind;
  /** Operand values (ciphertexts, and the plaintext of add_plain/mul_plain as the second operand). */
  args: FheValue[];
  /** Result; undefined only for output. */
  result?: FheValue;
  /** rotate: the step (positive = slots move towards index 0, as SEAL's rotate_vector). */
  step?: number;
  /** input/output: the tensor name. */
  tensor?: string;
  /** input/output: where the tensor lives in the slots. */
  layout?: SlotLayout;
  /** encode: the constant's name (without @). */
  constant?: string;
  /**
   * refresh: the refreshed value comes back times this constant (`refresh %x times 0.5`): a constant
   * product folded into the refresh (passes/fhe/refresh/refresh-fold.ts), which then costs no level.
   */
  factor?: number;
}

/** The modulus chain the program is typed against: data primes q_0..q_L (the special prime is not needed). */
export interface FheChain {
  /** Ring degree N; slots = N / 2. */
  ringDegree: number;
  primes: bigint[];
}

/** An annotation value: a number (printed round-trip exact) or a string. */
export type FheAttribute = number | string;

export interface FheProgram {
  name: string;
  slots: number;
  /** Present for managed programs. */
  chain?: FheChain;
  /**
   * Analysis and management results carried in the text (`attr ckks.scale = 1099511627776`), in the
   * way HEIR's `mgmt` attributes are: a pass run alone on annotated IR reads what earlier passes found.
   */
  attributes?: Record<string, FheAttribute>;
  constants: Map<string, FheConstant>;
  ops: FheOp[];
}

export const FHE_OP_KINDS: readonly FheOpKind[] = [
  'input', 'output', 'encode', 'add', 'sub', 'negate', 'add_plain', 'mul_plain', 'mul',
  'relinearize', 'rescale', 'mod_switch', 'rotate', 'refresh',
];

/**
 * The scale a refresh's masked ciphertext is sent at: its operand's, over the refresh's factor. The
 * integer polynomial is the operand's; declared at scale / c it holds c x, so the key holder's scale
 * change carries c (passes/fhe/refresh/refresh-fold.ts). The refresh point's bound is then c |x|'s.
 */
export function maskedScale(op: FheOp): number {
  return op.args[0]!.type.scale! / (op.factor ?? 1);
}

/** Ops that consume a multiplicative level once rescaled. */
export function isMultiplication(kind: FheOpKind): boolean {
  return kind === 'mul' || kind === 'mul_plain';
}

/** SEAL's are_close: equal up to one double epsilon relative to the larger magnitude. */
export function scalesClose(a: number, b: number): boolean {
  const m = Math.max(Math.abs(a), Math.abs(b), 1);
  return Math.abs(a - b) < Number.EPSILON * m;
}

/** Bits of the product of the first level + 1 primes, per chain (typing asks once per op). */
const bitsByChain = new WeakMap<FheChain, number[]>();

/** Bit count of the product of the first level+1 data primes (SEAL's total_coeff_modulus_bit_count). */
export function chainBitsAt(chain: FheChain, level: number): number {
  let bits = bitsByChain.get(chain);
  if (!bits) {
    bits = [];
    let p = 1n;
    for (const q of chain.primes) {
      p *= q;
      bits.push(p.toString(2).length);
    }
    bitsByChain.set(chain, bits);
  }
  if (level < bits.length) return bits[level]!;
  // Past the chain (a malformed level): the product of the primes that exist.
  return bits[bits.length - 1] ?? 0;
}

export function constantValueAt(c: FheConstantData, i: number): number {
  if (c.kind === 'splat') return c.value;
  if (c.kind === 'dense') return i < c.values.length ? c.values[i]! : 0;
  if (c.kind === 'elided') throw new FhecError('a constant of this program was elided when it was printed: its values are not here');
  if (c.kind === 'diagonal') throw new Error('internal: a diagonal constant is read whole (constantSlots)');
  throw new Error('weights constant not resolved');
}
