// Builds FHE programs op by op, inferring each result type (so an ill-typed op fails where it is made).
// Without a chain the program is unmanaged: types carry no level/scale until passes/fhe/manage.ts runs.

import { FhecError } from '../errors.js';
import { inferResultType } from './typing.js';
import type { LinearMatrix, MatrixSource } from './diagonal.js';
import type { CtType, FheChain, FheConstant, FheConstantData, FheOp, FheProgram, FheValue, PtType, SlotLayout } from './types.js';

export class FheBuilder {
  private readonly ops: FheOp[] = [];
  private readonly constants = new Map<string, FheConstant>();
  private readonly names = new Set<string>();
  private counter = 0;
  private rotations = 0;
  /** Splat constants by value (shared), and the next numeric suffix to try per constant name hint. */
  private readonly splats = new Map<string, string>();
  private readonly hintNext = new Map<string, number>();
  private nextMatrix = 0;

  constructor(
    readonly name: string,
    readonly slots: number,
    readonly chain?: FheChain,
  ) {
    if (!Number.isInteger(slots) || slots < 1 || (slots & (slots - 1)) !== 0) {
      throw new FhecError(`slot count ${slots} is not a power of two`);
    }
  }

  /**
   * A builder for ops to add to an existing unmanaged program: its constants are kept and its value
   * and constant names reserved, so what is built can be spliced in without clashes.
   */
  static extending(program: FheProgram): FheBuilder {
    const b = new FheBuilder(program.name, program.slots, program.chain);
    for (const c of program.constants.values()) {
      b.constants.set(c.name, c);
      if (c.data.kind === 'diagonal') b.nextMatrix = Math.max(b.nextMatrix, c.data.matrix.id + 1);
    }
    for (const op of program.ops) if (op.result) b.names.add(op.result.name);
    return b;
  }

  private fresh(hint?: string): string {
    let n = hint ?? String(this.counter++);
    while (this.names.has(n)) n = hint ? `${hint}.${this.counter++}` : String(this.counter++);
    this.names.add(n);
    return n;
  }

  private emit(op: FheOp, declared?: CtType | PtType, hint?: string): FheValue {
    const type = inferResultType(op, this.chain, declared);
    if (!type) throw new Error(`${op.kind} has no result`);
    const result: FheValue = { name: this.fresh(hint), type };
    op.result = result;
    this.ops.push(op);
    return result;
  }

  /** Registers a plaintext vector; identical splats are shared. Returns its name. */
  constant(data: FheConstantData, hint = 'c'): string {
    // Both lookups are by map, not by scanning: a large model registers millions of constants.
    const splatKey = data.kind === 'splat' ? (Object.is(data.value, -0) ? '-0' : String(data.value)) : undefined;
    if (splatKey !== undefined) {
      const hit = this.splats.get(splatKey);
      if (hit !== undefined) return hit;
    }
    if (data.kind === 'dense' && data.values.length > this.slots) {
      throw new FhecError(`constant has ${data.values.length} values but only ${this.slots} slots`);
    }
    // Names as before (hint, hint0, hint1, ...), resuming from the last suffix given for this hint.
    let name = hint;
    let i = this.hintNext.get(hint) ?? 0;
    while (this.constants.has(name)) name = `${hint}${i++}`;
    this.hintNext.set(hint, i);
    this.constants.set(name, { name, data });
    if (splatKey !== undefined) this.splats.set(splatKey, name);
    return name;
  }

  /** A new matrix of the program, referencing its weight (its diagonals are `diagonal` constants). */
  matrix(source: MatrixSource): LinearMatrix {
    return { id: this.nextMatrix++, source };
  }

  input(tensor: string, layout: SlotLayout, at?: { level: number; scale: number }, hint?: string): FheValue {
    const type: CtType = at ? { kind: 'ct', level: at.level, scale: at.scale, size: 2 } : { kind: 'ct', size: 2 };
    return this.emit({ kind: 'input', args: [], tensor, layout }, type, hint);
  }

  output(tensor: string, x: FheValue, layout: SlotLayout): void {
    const op: FheOp = { kind: 'output', args: [x], tensor, layout };
    inferResultType(op, this.chain);
    this.ops.push(op);
  }

  encode(constant: string, at?: { level: number; scale: number }): FheValue {
    if (!this.constants.has(constant)) throw new FhecError(`unknown constant @${constant}`);
    const type: PtType = at ? { kind: 'pt', level: at.level, scale: at.scale } : { kind: 'pt' };
    return this.emit({ kind: 'encode', args: [], constant }, type);
  }

  add(a: FheValue, b: FheValue): FheValue {
    return this.emit({ kind: 'add', args: [a, b] });
  }
  sub(a: FheValue, b: FheValue): FheValue {
    return this.emit({ kind: 'sub', args: [a, b] });
  }
  negate(a: FheValue): FheValue {
    return this.emit({ kind: 'negate', args: [a] });
  }
  addPlain(a: FheValue, p: FheValue): FheValue {
    return this.emit({ kind: 'add_plain', args: [a, p] });
  }
  mulPlain(a: FheValue, p: FheValue): FheValue {
    return this.emit({ kind: 'mul_plain', args: [a, p] });
  }
  mul(a: FheValue, b: FheValue): FheValue {
    return this.emit({ kind: 'mul', args: [a, b] });
  }
  relinearize(a: FheValue): FheValue {
    return this.emit({ kind: 'relinearize', args: [a] });
  }
  rescale(a: FheValue): FheValue {
    return this.emit({ kind: 'rescale', args: [a] });
  }
  modSwitch(a: FheValue): FheValue {
    return this.emit({ kind: 'mod_switch', args: [a] });
  }
  rotate(a: FheValue, step: number): FheValue {
    this.rotations++;
    return this.emit({ kind: 'rotate', args: [a], step });
  }
  refresh(a: FheValue, at?: { level: number; scale: number }, factor?: number): FheValue {
    const type: CtType | undefined = at ? { kind: 'ct', level: at.level, scale: at.scale, size: 2 } : undefined;
    return this.emit({ kind: 'refresh', args: [a], ...(factor !== undefined && factor !== 1 ? { factor } : {}) }, type);
  }

  /** Convenience for lowerings: multiply by a plaintext vector (or a scalar splat). */
  mulConst(a: FheValue, data: FheConstantData, hint?: string): FheValue {
    return this.mulPlain(a, this.encode(this.constant(data, hint)));
  }
  addConst(a: FheValue, data: FheConstantData, hint?: string): FheValue {
    return this.addPlain(a, this.encode(this.constant(data, hint)));
  }

  /** Ops emitted so far (index of the next op): lets passes record which ops came from where. */
  get opCount(): number {
    return this.ops.length;
  }

  /** Rotations emitted so far. */
  get rotationCount(): number {
    return this.rotations;
  }

  build(): FheProgram {
    return { name: this.name, slots: this.slots, chain: this.chain, constants: new Map(this.constants), ops: [...this.ops] };
  }
}
