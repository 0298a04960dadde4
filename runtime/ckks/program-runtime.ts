// The one engine that runs a managed FHE program on an evaluator: executeProgram (execute.ts) steps it
// through the program itself, and the modules `fhec compile --emit ts` writes for model and step plans
// drive it through PlanRuntime, the narrow API below (one call per op, values as opaque names). Both
// run the ops in execution order (runtime/refresh/rounds.ts: stage by stage, each stage's refreshes as
// one round) and each op through op-semantics.ts, so the two paths make the very same evaluator and
// refresher calls in the same order (bit-identical results). Emitted code is checked call by call
// against the program at the cursor (kind, operands, constant, step, tensor): code that drifted from
// its plan fails at the first differing op instead of computing something else. The engine owns the
// values' lifetimes: each value is freed after its last use and an unused result at once, so SEAL's
// wasm heap holds only live ciphertexts. A round's refreshes go to the run's CkksRefresher together
// once its last refresh is called (one message when the refresher batches), so how refreshes are
// carried out can change without touching emitted code.

import { FhecError } from '../../ir/errors.js';
import type { FheOp, FheProgram } from '../../ir/fhe/types.js';
import type { CkksEvaluator, CkksHandle, CkksRefresher, RefreshAhead, WhileWaiting } from '../backend.js';
import type { PlaintextCache } from './plaintext-cache.js';
import type { IdleWork } from './idle-work.js';
import { checkRunnable, constantEncoder, refreshesAhead, refreshRound, runOp, withOpContext } from './op-semantics.js';
import { MaskStock } from '../refresh/mask-stock.js';
import { refreshRotations, refreshStages, roundInputs, type RefreshRotation } from '../refresh/rounds.js';

/** The op kind counted for a rotation the key holder returned with a refresh (no time on this thread). */
export const KEY_HOLDER_ROTATE = 'rotate (key holder)';

/** Refresh rounds whose masks a mask supply is asked for ahead of the evaluator reaching them. */
const SUPPLY_AHEAD = 3;

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
  /** Work for this thread while a refresh round waits on the key holder (idle-work.ts), after the next round's zeros. */
  idle?: IdleWork;
  /** Shown each value an op produces before it can be freed (runtime/debug/measure.ts decrypts them). */
  observe?(op: FheOp, value: CkksHandle): void;
  /**
   * Run the ops a round of refreshes does not wait on while the key holder works on it (default true; SEAL,
   * executeProgram only: emitted modules call the ops in their order). Same values either way.
   */
  deferOps?: boolean;
}

declare const CT: unique symbol;

/**
 * A value of a running program as emitted code holds it: the value's name in the program, branded.
 * The runtime keeps the ciphertext (or encoded constant), so a value can be handed out before a
 * batched refresh round has produced it.
 */
export type Ct = string & { readonly [CT]: true };

/**
 * What code emitted for a plan calls: one method per FHE op kind, in execution order. Names are the
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

/** A call's own operand beside the op's kind and operands: the op must carry the same, or the code drifted. */
interface Asked {
  matches(op: FheOp): boolean;
  text: string;
}

export class ProgramRuntime implements PlanRuntime {
  private cursor = 0;
  /** Op indices in execution order; positions in it are what roundEnds and deferrable hold. */
  private readonly order: number[];
  /** Uses of each value not run yet (an op counts once per operand name): the value is freed at 0. */
  private readonly usesLeft = new Map<string, number>();
  /**
   * Positions of ops that may wait for the key holder's next answer: in a stage with a round of refreshes,
   * the ops that round does not depend on. Run on this thread while the key holder works (or when a
   * consumer needs them first), they leave the round's critical path (see deferOps).
   */
  private readonly deferrable = new Set<number>();
  /** Ops set aside (deferrable ones, when this runtime drives the program), by result name, in program order. */
  private readonly deferred = new Map<string, { index: number; op: FheOp }>();
  /** Positions of the last refresh of each round: the round goes to the refresher there. */
  private readonly roundEnds = new Set<number>();
  /** Positions of the refreshes called in the round under way. */
  private round: number[] = [];
  /** Rounds sent so far, and the levels of each round's refresh inputs (the zeros its masks need). */
  private roundsDone = 0;
  private readonly roundLevels: number[][] = [];
  /** Per round, its refreshes as the program types them (masks made ahead, CkksRefresher.prepare). */
  private readonly roundAhead: (RefreshAhead[] | undefined)[] = [];
  private readonly live = new Map<string, CkksHandle>();
  /**
   * With a refresher that rotatesOnKeyHolder: per refresh op, the rotate ops of its result the key holder
   * answers in the refresh's reply (rounds.ts refreshRotations), and those answers until their op runs.
   */
  private readonly rotations?: Map<number, RefreshRotation[]>;
  /** The same rotations' steps, by refresh op (what the refresher is asked for), computed once. */
  private readonly rotationSteps?: Map<number, number[]>;
  private readonly rotatedAhead = new Map<number, CkksHandle>();
  /**
   * Encodes not carried out yet (SEAL only): an encode runs when its first consumer needs it. The stage
   * order puts every encode in the first stage (they wait on nothing), so run eagerly a large layer held
   * all its weight plaintexts at once (a Llama-3.2-1B-shaped layer: 22,805 of them, 15.7 GiB, where
   * SEAL's heap is 4 GiB). SEAL's encode is deterministic, so deferring it changes no bit; the
   * simulator draws encoding noise in execution order, so it keeps the order (and has no such heap).
   */
  private readonly pending = new Map<string, { index: number; op: FheOp }>();
  private readonly deferEncodes: boolean;
  private readonly outputs = new Map<string, Uint8Array>();
  private readonly stats = new Map<string, OpStats>();
  private readonly encoder: (op: FheOp) => CkksHandle;
  private readonly t0: number;
  private finished = false;
  /** Time spent in deferred encodes and ops run inside another op or a round (counted as themselves, not as that op). */
  private nestedMs = 0;
  /**
   * Whether ops a round does not wait on are set aside until the key holder works (SEAL only: ops are
   * deterministic, so the order changes no bit; the simulator draws noise in execution order and keeps it).
   */
  private readonly deferOps: boolean;

  constructor(
    readonly program: FheProgram,
    private readonly ev: CkksEvaluator,
    private readonly inputs: Map<string, Uint8Array>,
    private readonly options: ExecuteOptions = {},
  ) {
    checkRunnable(program, ev);
    // Stage order (rounds.ts): the order the key holder's schedule expects the refreshes in, and the
    // order the plan-module emitter writes the ops in.
    this.order = [];
    for (const stage of refreshStages(program).stages) {
      const first = this.order.length;
      const waitedOn = stage.refreshes.length > 0 ? roundInputs(program, stage) : undefined;
      stage.ops.forEach((i, k) => {
        const op = program.ops[i]!;
        if (waitedOn && !waitedOn.has(i) && op.result && op.kind !== 'encode' && op.kind !== 'input') this.deferrable.add(first + k);
      });
      this.order.push(...stage.ops, ...stage.refreshes);
      if (stage.refreshes.length > 0) {
        this.roundEnds.add(this.order.length - 1);
        this.roundLevels.push(stage.refreshes.map((i) => program.ops[i]!.args[0]!.type.level).filter((l): l is number => l !== undefined));
        this.roundAhead.push(refreshesAhead(program, stage.refreshes));
      }
    }
    for (const i of this.order) for (const a of new Set(program.ops[i]!.args.map((x) => x.name))) this.usesLeft.set(a, (this.usesLeft.get(a) ?? 0) + 1);
    this.encoder = constantEncoder(program, ev, options.plaintexts);
    this.deferEncodes = !ev.simulated && !options.observe;
    this.deferOps = this.deferEncodes && options.refresher !== undefined && options.deferOps !== false;
    if (options.refresher?.rotatesOnKeyHolder && options.refresher.refreshRotated) {
      this.rotations = refreshRotations(program);
      this.rotationSteps = new Map([...this.rotations].map(([i, list]) => [i, list.map((r) => r.step)]));
    }
    options.trace?.begin(program);
    this.t0 = performance.now();
  }

  input(tensor: string): Ct {
    return this.call('input', [], { matches: (op) => op.tensor === tensor, text: `input "${tensor}"` })!;
  }
  encode(constant: string): Ct {
    return this.call('encode', [], { matches: (op) => op.constant === constant, text: `encode @${constant}` })!;
  }
  add(a: Ct, b: Ct): Ct {
    return this.call('add', [a, b])!;
  }
  sub(a: Ct, b: Ct): Ct {
    return this.call('sub', [a, b])!;
  }
  negate(a: Ct): Ct {
    return this.call('negate', [a])!;
  }
  addPlain(a: Ct, p: Ct): Ct {
    return this.call('add_plain', [a, p])!;
  }
  mulPlain(a: Ct, p: Ct): Ct {
    return this.call('mul_plain', [a, p])!;
  }
  mul(a: Ct, b: Ct): Ct {
    return this.call('mul', [a, b])!;
  }
  relinearize(a: Ct): Ct {
    return this.call('relinearize', [a])!;
  }
  rescale(a: Ct): Ct {
    return this.call('rescale', [a])!;
  }
  modSwitch(a: Ct): Ct {
    return this.call('mod_switch', [a])!;
  }
  rotate(a: Ct, step: number): Ct {
    return this.call('rotate', [a], { matches: (op) => op.step === step, text: `rotate by ${step}` })!;
  }
  refresh(a: Ct): Ct {
    return this.call('refresh', [a])!;
  }
  output(tensor: string, a: Ct): void {
    this.call('output', [a], { matches: (op) => op.tensor === tensor, text: `output "${tensor}"` });
  }

  /** Runs the program's next op from the program itself (executeProgram), setting aside what a round does not wait on. */
  step(): void {
    this.advance(this.deferOps);
  }

  get done(): boolean {
    return this.cursor >= this.program.ops.length;
  }

  /** After the last op: frees what is left and returns the outputs and per-kind timings. */
  finish(): ExecuteResult {
    if (!this.done) throw new FhecError(`the run stopped after ${this.cursor} of the program's ${this.program.ops.length} ops`);
    if (!this.finished) {
      // Every op set aside has a consumer that ran it; any left (none expected) run before the end.
      for (const name of [...this.deferred.keys()]) this.runDeferred(name);
      this.finished = true;
      this.abort();
      this.options.trace?.end();
    }
    return { outputs: this.outputs, ops: this.stats, totalMs: performance.now() - this.t0, simulated: this.ev.simulated };
  }

  /** Frees everything still live (after a failed run too). */
  abort(): void {
    for (const h of this.live.values()) this.free(h);
    this.live.clear();
    for (const h of this.rotatedAhead.values()) this.ev.free(h);
    this.rotatedAhead.clear();
    this.pending.clear();
    this.deferred.clear();
  }

  private readonly get = (name: string): CkksHandle => {
    const h = this.live.get(name) ?? this.encodePending(name) ?? this.runDeferred(name);
    if (!h) throw new Error(`internal: %${name} is not live`);
    return h;
  };

  /** Carries out a deferred encode now that a consumer needs it. */
  private encodePending(name: string): CkksHandle | undefined {
    const p = this.pending.get(name);
    if (!p) return undefined;
    this.pending.delete(name);
    const start = performance.now();
    const h = withOpContext(p.op, () => runOp(p.op, this.ev, this.inputs, this.get, this.encoder, this.outputs))!;
    const ms = performance.now() - start;
    this.nestedMs += ms;
    this.count(p.index, 'encode', ms);
    this.live.set(name, h);
    return h;
  }

  /** Runs an op set aside, now that a consumer needs its result or the thread waits on the key holder. */
  private runDeferred(name: string): CkksHandle | undefined {
    const d = this.deferred.get(name);
    if (!d) return undefined;
    this.deferred.delete(name);
    const start = performance.now();
    const before = this.nestedMs;
    this.run(d.index, d.op);
    // Its whole time, its own set-aside operands' included, is nested in whatever needed it (once).
    this.nestedMs = before + (performance.now() - start);
    return this.live.get(name);
  }

  /** Runs ops set aside, oldest first, until the key holder has answered or none is left. */
  private runDeferredWhile(answered: () => boolean): void {
    while (this.deferred.size > 0 && !answered()) {
      const [name] = this.deferred.keys();
      this.runDeferred(name!);
    }
  }

  /** Runs one (non-refresh) op, counts its own time, and frees what died there. */
  private run(i: number, op: FheOp): void {
    const ahead = this.rotatedAhead.get(i);
    if (ahead) {
      // The key holder returned this rotation with the refresh: no key switch here.
      this.rotatedAhead.delete(i);
      this.count(i, KEY_HOLDER_ROTATE, 0);
      this.retire(op, ahead);
      return;
    }
    const start = performance.now();
    const nested = this.nestedMs;
    const result = withOpContext(op, () => runOp(op, this.ev, this.inputs, this.get, this.encoder, this.outputs));
    // A deferred encode or op its operands needed was counted as itself: not again as this op.
    this.count(i, op.kind, performance.now() - start - (this.nestedMs - nested));
    this.retire(op, result);
  }

  private free(h: CkksHandle): void {
    if (!this.options.plaintexts?.holds(h)) this.ev.free(h);
  }

  private drift(op: FheOp, got: string): FhecError {
    const at = op.result ? `%${op.result.name} = ${op.kind}` : op.kind;
    return new FhecError(`the code run is out of step with the program at op ${this.cursor} (${at}${op.constant ? ` @${op.constant}` : ''}${op.tensor ? ` "${op.tensor}"` : ''}${op.step !== undefined ? ` by ${op.step}` : ''}): it asked for ${got}`);
  }

  /** Checks that the op at the cursor is `kind` on `args` (and what `asked` names), then runs it. */
  private call(kind: FheOp['kind'], args: Ct[], asked?: Asked): Ct | undefined {
    const op = this.program.ops[this.order[this.cursor] ?? -1];
    if (!op) throw new FhecError(`the code run asked for a ${kind} after the program's last op`);
    if (op.kind !== kind || op.args.length !== args.length || op.args.some((a, k) => a.name !== args[k])) {
      throw this.drift(op, `${kind} of ${args.length} operand(s) that are not ${op.args.map((a) => `%${a.name}`).join(', ') || 'none'}`);
    }
    if (asked && !asked.matches(op)) throw this.drift(op, asked.text);
    return this.advance();
  }

  /** Runs the op at the cursor (a refresh when its round is complete; with `defer`, sets a deferrable op aside), then frees what died there. */
  private advance(defer = false): Ct | undefined {
    const at = this.cursor++;
    // A helper thread making masks starts on the first rounds' at once.
    if (at === 0 && this.supplying() && this.options.refresher?.prepare && MaskStock.supports(this.ev)) {
      const first = this.masksAhead(0);
      if (first) this.options.refresher.prepare(first);
    }
    const i = this.order[at]!;
    const op = this.program.ops[i]!;
    if (op.kind === 'refresh') {
      this.round.push(at);
      if (this.roundEnds.has(at)) this.refreshRound();
    } else if (op.kind === 'encode' && this.deferEncodes) {
      // Run by the first consumer (get); a constant nobody uses is never encoded.
      if (this.usesLeft.has(op.result!.name)) this.pending.set(op.result!.name, { index: i, op });
    } else if (defer && this.deferrable.has(at) && this.usesLeft.has(op.result!.name)) {
      this.deferred.set(op.result!.name, { index: i, op });
    } else {
      this.run(i, op);
    }
    return op.result?.name as Ct | undefined;
  }

  /** The round under way, in one call to the refresher; its time is shared out evenly among its refreshes. */
  private refreshRound(): void {
    const positions = this.round;
    this.round = [];
    const indices = positions.map((at) => this.order[at]!);
    const start = performance.now();
    // While the key holder answers, the evaluator asks its mask supply (a helper thread) for the masks of
    // the rounds ahead and keeps those arrived, or makes the next round's masks itself (or at least the
    // zeros they need); then the idle work it was given (encodes ahead) until the answer is in. A key
    // holder that answers at once leaves no wait: the supply is then asked after the round.
    const at = ++this.roundsDone;
    const ev = this.ev;
    const refresher = this.options.refresher;
    const canMask = refresher?.prepare !== undefined && MaskStock.supports(ev);
    const supplied = canMask && this.supplying();
    const ahead = supplied ? this.masksAhead(at) : undefined;
    let asked = false;
    const masks = canMask && !supplied ? this.roundAhead[at] : undefined;
    const zeros = !supplied && !masks && ev.prepareZeros ? this.roundLevels[at] : undefined;
    const idle = this.options.idle?.pending() ? this.options.idle : undefined;
    const whileWaiting: WhileWaiting | undefined =
      ahead || masks || zeros || idle || this.deferred.size > 0
        ? (answered) => {
            if (ahead) refresher!.prepare!(ahead);
            else if (masks) refresher!.prepare!(masks);
            else if (zeros) ev.prepareZeros!(zeros);
            asked = true;
            // Ops set aside before the idle work: the program needs them, the idle work is optional.
            this.runDeferredWhile(answered);
            idle?.fill(answered);
          }
        : undefined;
    const nested = this.nestedMs;
    const { fresh, rotated } = refreshRound(this.program, indices, this.ev, this.get, this.options.refresher, whileWaiting, this.rotationSteps);
    indices.forEach((i, k) => rotated[k]!.forEach((h, j) => this.rotatedAhead.set(this.rotations!.get(i)![j]!.op, h)));
    if (ahead && !asked) refresher!.prepare!(ahead);
    const ms = (performance.now() - start - (this.nestedMs - nested)) / positions.length;
    positions.forEach((_, k) => {
      this.count(indices[k]!, 'refresh', ms);
      this.retire(this.program.ops[indices[k]!]!, fresh[k]);
    });
  }

  /** Whether refresh masks come from the evaluator's mask supply (a helper thread that has not stopped). */
  private supplying(): boolean {
    return this.ev.maskSupply !== undefined && !this.ev.maskSupply.failed;
  }

  /** The refreshes of rounds `at` to `at + SUPPLY_AHEAD - 1`, whose masks a mask supply is asked for (made while this thread computes). */
  private masksAhead(at: number): RefreshAhead[] | undefined {
    const out = this.roundAhead.slice(at, at + SUPPLY_AHEAD).flatMap((r) => r ?? []);
    return out.length > 0 ? out : undefined;
  }

  private count(index: number, kind: string, ms: number): void {
    const s = this.stats.get(kind) ?? { count: 0, ms: 0 };
    s.count++;
    s.ms += ms;
    this.stats.set(kind, s);
    this.options.trace?.op(index, kind, ms);
  }

  /** Keeps the op's result and frees the operands whose last use it was. */
  private retire(op: FheOp, result: CkksHandle | undefined): void {
    if (op.result && result) {
      this.options.observe?.(op, result);
      this.live.set(op.result.name, result);
    }
    for (const a of new Set(op.args.map((x) => x.name))) {
      const left = this.usesLeft.get(a)! - 1;
      this.usesLeft.set(a, left);
      if (left === 0) {
        this.free(this.get(a));
        this.live.delete(a);
      }
    }
    // A value nobody uses is dropped at once.
    if (op.result && result && !this.usesLeft.has(op.result.name)) {
      this.free(result);
      this.live.delete(op.result.name);
    }
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
