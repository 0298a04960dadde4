// The one engine that runs a managed FHE program's ops on an evaluator, op by op in program order.
// executeProgram (execute.ts) drives it from the program itself; code emitted by `fhec compile --emit ts`
// for model and step plans drives it through PlanRuntime, the narrow API below (one call per op, values
// as opaque handles). Either way every op is checked against the program at the cursor (kind, operands,
// constant, step, tensor), so emitted code that drifted from its plan fails at the first differing op
// instead of computing something else; and both make the very same evaluator calls in the same order
// (bit-identical results on sim with the same seed). The engine owns the values' lifetimes: each value
// is freed after its last use and an unused result at once, so SEAL's wasm heap holds only live
// ciphertexts; encoded dense constants may come from (and stay in) a plaintext cache shared across runs.
// Refresh ops go to the CkksRefresher of the run, so how refreshes are carried out (round trips,
// batching, bootstraps) can change without touching emitted code.

import { FhecError } from '../../ir/errors.js';
import { constantSlots } from '../../ir/fhe/layout.js';
import type { FheOp, FheProgram } from '../../ir/fhe/types.js';
import { verifyFhe } from '../../ir/fhe/verify.js';
import { checkProgramChain, type CkksParameters } from '../../ir/ckks/params.js';
import type { CkksEvaluator, CkksHandle, CkksRefresher } from '../backend.js';
import { constantKeys, type PlaintextCache } from './plaintext-cache.js';
import { executionOrder } from '../refresh/rounds.js';

export interface OpStats {
  count: number;
  ms: number;
}

export interface ExecuteResult {
  /** Serialized output ciphertexts by tensor name. */
  outputs: Map<string, Uint8Array>;
  /** Count and total time per op kind. */
  ops: Map<string, OpStats>;
  totalMs: number;
  simulated: boolean;
}

/** What `fhec run --trace` / `fhec generate --trace` listen to. */
export interface ExecutionTrace {
  begin(program: FheProgram): void;
  op(index: number, kind: string, ms: number): void;
  end(): void;
}

export interface ExecuteOptions {
  /** Carries out `refresh` ops (a client-aided round trip, or a bootstrap); required if the program has any. */
  refresher?: CkksRefresher;
  /** Encoded dense constants kept across runs (the steps of a generation); its plaintexts are never freed here. */
  plaintexts?: PlaintextCache;
  /** Told when the program starts and the time of each op (runtime/trace/run-trace.ts records them). */
  trace?: ExecutionTrace;
}

/** An encrypted value (or encoded constant) of a running program, as emitted code holds it. */
export type Ct = CkksHandle;

/**
 * What code emitted for a plan calls: one method per FHE op kind, in program order. Names are the
 * plan's (tensor names, constant names without @); levels and scales are the plan's, checked by the engine.
 */
export interface PlanRuntime {
  input(tensor: string): Ct;
  encode(constant: string): Ct;
  add(a: Ct, b: Ct): Ct;
  sub(a: Ct, b: Ct): Ct;
  negate(a: Ct): Ct;
  addPlain(a: Ct, p: Ct): Ct;
  mulPlain(a: Ct, p: Ct): Ct;
  mul(a: Ct, b: Ct): Ct;
  relinearize(a: Ct): Ct;
  rescale(a: Ct): Ct;
  modSwitch(a: Ct): Ct;
  rotate(a: Ct, step: number): Ct;
  refresh(a: Ct): Ct;
  output(tensor: string, a: Ct): void;
}

function checkProgramParams(program: FheProgram, params: CkksParameters): void {
  checkProgramChain(program, params, 'program is not managed (no modulus chain); run the scale management pass first');
}

export class ProgramRuntime implements PlanRuntime {
  private cursor = 0;
  private readonly order: number[];
  private readonly lastUse = new Map<string, number>();
  private readonly live = new Map<string, CkksHandle>();
  private readonly outputs = new Map<string, Uint8Array>();
  private readonly stats = new Map<string, OpStats>();
  private readonly keys?: Map<string, string>;
  private readonly t0: number;
  private finished = false;

  constructor(
    readonly program: FheProgram,
    private readonly ev: CkksEvaluator,
    private readonly inputs: Map<string, Uint8Array>,
    private readonly options: ExecuteOptions = {},
  ) {
    checkProgramParams(program, ev.params);
    verifyFhe(program, { managed: true });
    // Stage order (rounds.ts): the order the key holder's schedule expects the refreshes in, and the
    // order the plan-module emitter writes the ops in.
    this.order = executionOrder(program);
    this.order.forEach((i, at) => program.ops[i]!.args.forEach((a) => this.lastUse.set(a.name, at)));
    options.plaintexts?.beginRun(program);
    if (options.plaintexts) this.keys = constantKeys(program);
    options.trace?.begin(program);
    this.t0 = performance.now();
  }

  input(tensor: string): Ct {
    return this.next('input', [], (op) => {
      if (op.tensor !== tensor) throw this.drift(op, `input "${tensor}"`);
      const bytes = this.inputs.get(tensor);
      if (!bytes) throw new FhecError(`no ciphertext given for input "${tensor}"`);
      const ct = this.ev.loadCiphertext(bytes);
      const t = op.result!.type;
      if (this.ev.levelOf(ct) !== t.level) throw new FhecError(`input "${tensor}" is at level ${this.ev.levelOf(ct)}, the program expects ${t.level}`);
      if (this.ev.scaleOf(ct) !== t.scale) throw new FhecError(`input "${tensor}" has scale ${this.ev.scaleOf(ct)}, the program expects ${t.scale}`);
      return ct;
    })!;
  }

  encode(constant: string): Ct {
    return this.next('encode', [], (op) => {
      if (op.constant !== constant) throw this.drift(op, `encode @${constant}`);
      const c = this.program.constants.get(constant)!;
      const t = op.result!.type;
      const values = () => constantSlots(c.data, this.program.slots, c.name);
      const key = this.keys?.get(constant);
      return key ? this.options.plaintexts!.encode(key, t.level!, t.scale!, values) : this.ev.encode(values(), t.level!, t.scale!);
    })!;
  }

  add(a: Ct, b: Ct): Ct {
    return this.next('add', [a, b], () => this.ev.add(a, b))!;
  }
  sub(a: Ct, b: Ct): Ct {
    return this.next('sub', [a, b], () => this.ev.sub(a, b))!;
  }
  negate(a: Ct): Ct {
    return this.next('negate', [a], () => this.ev.negate(a))!;
  }
  addPlain(a: Ct, p: Ct): Ct {
    return this.next('add_plain', [a, p], () => this.ev.addPlain(a, p))!;
  }
  mulPlain(a: Ct, p: Ct): Ct {
    return this.next('mul_plain', [a, p], () => this.ev.mulPlain(a, p))!;
  }
  mul(a: Ct, b: Ct): Ct {
    return this.next('mul', [a, b], () => this.ev.mul(a, b))!;
  }
  relinearize(a: Ct): Ct {
    return this.next('relinearize', [a], () => this.ev.relinearize(a))!;
  }
  rescale(a: Ct): Ct {
    return this.next('rescale', [a], () => this.ev.rescale(a))!;
  }
  modSwitch(a: Ct): Ct {
    return this.next('mod_switch', [a], () => this.ev.modSwitch(a))!;
  }
  rotate(a: Ct, step: number): Ct {
    return this.next('rotate', [a], (op) => {
      if (op.step !== step) throw this.drift(op, `rotate by ${step}`);
      return this.ev.rotate(a, step);
    })!;
  }

  refresh(a: Ct): Ct {
    return this.next('refresh', [a], (op) => {
      const refresher = this.options.refresher;
      if (!refresher) throw new FhecError('the program refreshes ciphertexts, and no refresher (key holder round trip or bootstrap) was given');
      const t = op.result!.type;
      const fresh = refresher.refresh(a, t.scale!, op.args[0]!.name);
      if (this.ev.levelOf(fresh) !== t.level || this.ev.scaleOf(fresh) !== t.scale) {
        this.ev.free(fresh);
        throw new FhecError(`refresh gave level ${this.ev.levelOf(fresh)} and scale ${this.ev.scaleOf(fresh)}, the program expects ${t.level} and ${t.scale}`);
      }
      return fresh;
    })!;
  }

  output(tensor: string, a: Ct): void {
    this.next('output', [a], (op) => {
      if (op.tensor !== tensor) throw this.drift(op, `output "${tensor}"`);
      this.outputs.set(tensor, this.ev.saveCiphertext(a));
      return undefined;
    });
  }

  /** Runs the program's next op from the program itself (executeProgram). */
  step(): void {
    const op = this.program.ops[this.order[this.cursor]!]!;
    const arg = (i: number) => this.live.get(op.args[i]!.name)!;
    switch (op.kind) {
      case 'input':
        return void this.input(op.tensor!);
      case 'output':
        return this.output(op.tensor!, arg(0));
      case 'encode':
        return void this.encode(op.constant!);
      case 'add':
        return void this.add(arg(0), arg(1));
      case 'sub':
        return void this.sub(arg(0), arg(1));
      case 'negate':
        return void this.negate(arg(0));
      case 'add_plain':
        return void this.addPlain(arg(0), arg(1));
      case 'mul_plain':
        return void this.mulPlain(arg(0), arg(1));
      case 'mul':
        return void this.mul(arg(0), arg(1));
      case 'relinearize':
        return void this.relinearize(arg(0));
      case 'rescale':
        return void this.rescale(arg(0));
      case 'mod_switch':
        return void this.modSwitch(arg(0));
      case 'rotate':
        return void this.rotate(arg(0), op.step!);
      case 'refresh':
        return void this.refresh(arg(0));
    }
  }

  get done(): boolean {
    return this.cursor >= this.program.ops.length;
  }

  /** After the last op: frees what is left and returns the outputs and per-kind timings. */
  finish(): ExecuteResult {
    if (!this.done) throw new FhecError(`the run stopped after ${this.cursor} of the program's ${this.program.ops.length} ops`);
    if (!this.finished) {
      this.finished = true;
      for (const h of this.live.values()) this.free(h);
      this.live.clear();
      this.options.trace?.end();
    }
    return { outputs: this.outputs, ops: this.stats, totalMs: performance.now() - this.t0, simulated: this.ev.simulated };
  }

  /** Frees everything still live after a failed run. */
  abort(): void {
    for (const h of this.live.values()) this.free(h);
    this.live.clear();
  }

  private free(h: CkksHandle): void {
    if (!this.options.plaintexts?.holds(h)) this.ev.free(h);
  }

  private drift(op: FheOp, got: string): FhecError {
    const at = op.result ? `%${op.result.name} = ${op.kind}` : op.kind;
    return new FhecError(`the code run is out of step with the program at op ${this.cursor} (${at}${op.constant ? ` @${op.constant}` : ''}${op.tensor ? ` "${op.tensor}"` : ''}${op.step !== undefined ? ` by ${op.step}` : ''}): it asked for ${got}`);
  }

  /** Checks the op at the cursor is `kind` on `args`, runs it, then frees what died there. */
  private next(kind: FheOp['kind'], args: CkksHandle[], run: (op: FheOp) => CkksHandle | undefined): CkksHandle | undefined {
    const i = this.cursor;
    const op = this.program.ops[this.order[i] ?? -1];
    if (!op) throw new FhecError(`the code run asked for a ${kind} after the program's last op`);
    if (op.kind !== kind || op.args.length !== args.length || op.args.some((a, k) => this.live.get(a.name) !== args[k])) {
      throw this.drift(op, `${kind} of ${args.length} operand(s) that are not ${op.args.map((a) => `%${a.name}`).join(', ') || 'none'}`);
    }
    const start = performance.now();
    let result: CkksHandle | undefined;
    try {
      result = run(op);
    } catch (e) {
      const where = { node: op.result ? `%${op.result.name} = ${op.kind}` : op.kind };
      if (e instanceof FhecError && !e.where.node) throw new FhecError(e.message, { ...e.where, ...where });
      throw e;
    }
    const ms = performance.now() - start;
    const s = this.stats.get(kind) ?? { count: 0, ms: 0 };
    s.count++;
    s.ms += ms;
    this.stats.set(kind, s);
    this.options.trace?.op(this.order[i]!, kind, ms);
    this.cursor++;
    if (op.result && result) this.live.set(op.result.name, result);
    for (const a of new Set(op.args.map((x) => x.name))) {
      if (this.lastUse.get(a) === i) {
        this.free(this.live.get(a)!);
        this.live.delete(a);
      }
    }
    // A value nobody uses is dropped at once.
    if (op.result && result && !this.lastUse.has(op.result.name)) {
      this.free(result);
      this.live.delete(op.result.name);
    }
    return result;
  }
}

/** What a module emitted for a plan by `fhec compile --emit ts` exports (compiler/emit/plan-module.ts). */
export interface EmittedPlanModule {
  PLAN: { readonly file: string; readonly programSha256: string; readonly weightsSha256?: string; readonly ops: number };
  run(rt: PlanRuntime): void;
}

/**
 * Runs an emitted module in place of executeProgram on the plan it was emitted from: the module must
 * name the plan's program and weights by their sha256 (`digests`, as the plan loader computed them).
 */
export function runEmittedPlan(
  module: EmittedPlanModule,
  plan: { program: FheProgram; digests: { program: string; weights?: string } },
  file: string,
  ev: CkksEvaluator,
  inputs: Map<string, Uint8Array>,
  options: ExecuteOptions = {},
): ExecuteResult {
  const m = module.PLAN;
  if (m.programSha256 !== plan.digests.program) {
    throw new FhecError(`the emitted module for ${m.file} was generated from another program than this plan holds (emit it again: fhec compile --emit ts)`, { file });
  }
  if (m.weightsSha256 !== plan.digests.weights) {
    throw new FhecError(`the emitted module for ${m.file} was generated for other weights than this plan's (emit it again: fhec compile --emit ts)`, { file });
  }
  const rt = new ProgramRuntime(plan.program, ev, inputs, options);
  try {
    module.run(rt);
  } catch (e) {
    rt.abort();
    throw e;
  }
  return rt.finish();
}
