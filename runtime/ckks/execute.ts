// Executes a managed FHE program on any backend's evaluator, and the client-side helpers around it:
// which keys a program needs, packing and encrypting its inputs, decrypting and unpacking its outputs.
// Values are freed after their last use so SEAL's wasm heap holds only live ciphertexts; encoded
// dense constants may instead come from (and stay in) a plaintext cache shared across runs.

import { FhecError } from '../../ir/errors.js';
import { packSlots, unpackSlots, constantSlots } from '../../ir/fhe/layout.js';
import type { FheOp, FheProgram } from '../../ir/fhe/types.js';
import { verifyFhe } from '../../ir/fhe/verify.js';
import type { CkksBackend, CkksClient, CkksEvaluator, CkksHandle, CkksRefresher, KeyRequest } from '../backend.js';
import { RefreshKeyHolder } from '../refresh/key-holder.js';
import type { RefreshAudit } from '../refresh/audit.js';
import type { MaskPolicy } from '../refresh/mask.js';
import { MaskedRefresher, type RefreshTraffic } from '../refresh/refresher.js';
import { refreshPointsOf, RefreshScheduleGuard } from '../refresh/schedule.js';
import { refreshStages, type ExecutionStage } from '../refresh/rounds.js';
import type { CkksParameters } from '../../ir/ckks/params.js';
import { constantKeys, type PlaintextCache } from './plaintext-cache.js';
import type { ExecuteOptions, ExecuteResult, ExecutionTrace, OpStats } from './program-runtime.js';

export type { OpStats, ExecuteResult, ExecuteOptions, ExecutionTrace } from './program-runtime.js';

/** Galois steps and relinearization the program needs. */
export function keyRequestFor(program: FheProgram): KeyRequest {
  const steps = new Set<number>();
  let relin = false;
  for (const op of program.ops) {
    if (op.kind === 'rotate') steps.add(op.step!);
    if (op.kind === 'relinearize') relin = true;
  }
  return { galoisSteps: [...steps].sort((a, b) => a - b), relin };
}

export function checkProgramParams(program: FheProgram, params: CkksParameters): void {
  const chain = program.chain;
  if (!chain) throw new FhecError('program is not managed (no modulus chain); run the scale management pass first');
  const data = params.primes.slice(0, -1);
  if (chain.ringDegree !== params.ringDegree || chain.primes.length !== data.length || chain.primes.some((q, i) => q !== data[i])) {
    throw new FhecError('program was typed for another modulus chain than these parameters');
  }
}

export function executeProgram(
  program: FheProgram,
  ev: CkksEvaluator,
  inputs: Map<string, Uint8Array>,
  options: ExecuteOptions = {},
): ExecuteResult {
  checkProgramParams(program, ev.params);
  verifyFhe(program, { managed: true });
  // Stage order (runtime/refresh/rounds.ts): everything that does not wait for a refresh round runs
  // first, then the whole round goes to the key holder in one message. A refresher that cannot batch
  // gets the refreshes one by one in program order (the order emitted code uses).
  const stages: ExecutionStage[] = options.refresher?.refreshMany ? refreshStages(program).stages : programOrderStages(program);
  const order = stages.flatMap((s) => [...s.ops, ...s.refreshes]);
  const lastUse = new Map<string, number>();
  order.forEach((i, at) => program.ops[i]!.args.forEach((a) => lastUse.set(a.name, at)));
  const live = new Map<string, CkksHandle>();
  const outputs = new Map<string, Uint8Array>();
  const stats = new Map<string, OpStats>();
  const encode = constantEncoder(program, ev, options.plaintexts);
  const free = (h: CkksHandle): void => {
    if (!options.plaintexts?.holds(h)) ev.free(h);
  };
  const trace = options.trace;
  trace?.begin(program);
  const t0 = performance.now();
  const get = (name: string): CkksHandle => {
    const h = live.get(name);
    if (!h) throw new Error(`internal: %${name} is not live`);
    return h;
  };
  const count = (kind: string, ms: number): void => {
    const s = stats.get(kind) ?? { count: 0, ms: 0 };
    s.count++;
    s.ms += ms;
    stats.set(kind, s);
  };
  let at = 0;
  const retire = (i: number, result: CkksHandle | undefined): void => {
    const op = program.ops[i]!;
    if (op.result && result) live.set(op.result.name, result);
    for (const a of new Set(op.args.map((x) => x.name))) {
      if (lastUse.get(a) === at) {
        free(get(a));
        live.delete(a);
      }
    }
    // A value nobody uses is dropped at once.
    if (op.result && !lastUse.has(op.result.name) && result) {
      free(result);
      live.delete(op.result.name);
    }
    at++;
  };
  for (const stage of stages) {
    for (const i of stage.ops) {
      const op = program.ops[i]!;
      const start = performance.now();
      const result = withOpContext(op, () => runOp(op, ev, inputs, get, encode, outputs));
      const ms = performance.now() - start;
      count(op.kind, ms);
      trace?.op(i, op.kind, ms);
      retire(i, result);
    }
    if (stage.refreshes.length === 0) continue;
    const start = performance.now();
    const fresh = refreshRound(program, stage.refreshes, ev, get, options.refresher);
    // The round's time is shared out evenly among its refreshes.
    const ms = (performance.now() - start) / stage.refreshes.length;
    stage.refreshes.forEach((i, k) => {
      count('refresh', ms);
      trace?.op(i, 'refresh', ms);
      retire(i, fresh[k]);
    });
  }
  for (const h of live.values()) free(h);
  trace?.end();
  return { outputs, ops: stats, totalMs: performance.now() - t0, simulated: ev.simulated };
}

/** Program order as stages: a stage ends at each refresh (one refresh per round). */
function programOrderStages(program: FheProgram): ExecutionStage[] {
  const stages: ExecutionStage[] = [{ ops: [], refreshes: [] }];
  program.ops.forEach((op, i) => {
    if (op.kind !== 'refresh') return stages[stages.length - 1]!.ops.push(i);
    stages[stages.length - 1]!.refreshes.push(i);
    stages.push({ ops: [], refreshes: [] });
  });
  return stages;
}

/** Runs `f` for `op`; an FhecError without a node gets the op's. */
export function withOpContext<T>(op: FheOp, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof FhecError && !e.where.node) throw new FhecError(e.message, { ...e.where, node: op.result ? `%${op.result.name} = ${op.kind}` : op.kind });
    throw e;
  }
}

/**
 * Encodes a program's constants on one evaluator: splats built directly where the backend can
 * (encodeSplat), dense constants through the plaintext cache when one is given.
 */
export function constantEncoder(program: FheProgram, ev: CkksEvaluator, cache?: PlaintextCache): (op: FheOp) => CkksHandle {
  cache?.beginRun(program);
  const keys = cache ? constantKeys(program) : undefined;
  return (op) => {
    const c = program.constants.get(op.constant!)!;
    const t = op.result!.type;
    if (c.data.kind === 'splat' && ev.encodeSplat) return ev.encodeSplat(c.data.value, t.level!, t.scale!);
    const values = () => constantSlots(c.data, program.slots, c.name);
    const key = keys?.get(c.name);
    return key ? cache!.encode(key, t.level!, t.scale!, values) : ev.encode(values(), t.level!, t.scale!);
  };
}

/** One refresh round: all its ciphertexts in one message when the refresher batches, each checked against the program's type. */
export function refreshRound(program: FheProgram, refreshes: number[], ev: CkksEvaluator, get: (name: string) => CkksHandle, refresher: CkksRefresher | undefined): CkksHandle[] {
  const ops = refreshes.map((i) => program.ops[i]!);
  if (!refresher) throw new FhecError('the program refreshes ciphertexts, and no refresher (key holder round trip or bootstrap) was given', { node: `%${ops[0]!.result!.name} = refresh` });
  const items = ops.map((op) => ({ ct: get(op.args[0]!.name), scale: op.result!.type.scale!, name: op.args[0]!.name }));
  const fresh = refresher.refreshMany ? refresher.refreshMany(items) : items.map((it) => refresher.refresh(it.ct, it.scale, it.name));
  return checkRefreshed(ops, ev, fresh);
}

/** refreshRound through the refresher's asynchronous path when it has one (a key holder across a network). */
export async function refreshRoundAsync(program: FheProgram, refreshes: number[], ev: CkksEvaluator, get: (name: string) => CkksHandle, refresher: CkksRefresher | undefined): Promise<CkksHandle[]> {
  if (!refresher?.refreshManyAsync) return refreshRound(program, refreshes, ev, get, refresher);
  const ops = refreshes.map((i) => program.ops[i]!);
  const items = ops.map((op) => ({ ct: get(op.args[0]!.name), scale: op.result!.type.scale!, name: op.args[0]!.name }));
  return checkRefreshed(ops, ev, await refresher.refreshManyAsync(items));
}

/** Each fresh ciphertext at the level and scale its refresh op promises; all are freed on a mismatch. */
function checkRefreshed(ops: FheOp[], ev: CkksEvaluator, fresh: CkksHandle[]): CkksHandle[] {
  const bad = ops.findIndex((op, k) => ev.levelOf(fresh[k]!) !== op.result!.type.level || ev.scaleOf(fresh[k]!) !== op.result!.type.scale);
  if (bad >= 0) {
    const t = ops[bad]!.result!.type;
    const [level, scale] = [ev.levelOf(fresh[bad]!), ev.scaleOf(fresh[bad]!)];
    fresh.forEach((h) => ev.free(h));
    throw new FhecError(`refresh gave level ${level} and scale ${scale}, the program expects ${t.level} and ${t.scale}`, { node: `%${ops[bad]!.result!.name} = refresh` });
  }
  return fresh;
}

export function runOp(
  op: FheOp,
  ev: CkksEvaluator,
  inputs: Map<string, Uint8Array>,
  get: (name: string) => CkksHandle,
  encode: (op: FheOp) => CkksHandle,
  outputs: Map<string, Uint8Array>,
): CkksHandle | undefined {
  const a = op.args[0] ? get(op.args[0].name) : undefined;
  const b = op.args[1] ? get(op.args[1].name) : undefined;
  switch (op.kind) {
    case 'input': {
      const bytes = inputs.get(op.tensor!);
      if (!bytes) throw new FhecError(`no ciphertext given for input "${op.tensor}"`);
      const ct = ev.loadCiphertext(bytes);
      const t = op.result!.type;
      if (ev.levelOf(ct) !== t.level) throw new FhecError(`input "${op.tensor}" is at level ${ev.levelOf(ct)}, the program expects ${t.level}`);
      if (ev.scaleOf(ct) !== t.scale) throw new FhecError(`input "${op.tensor}" has scale ${ev.scaleOf(ct)}, the program expects ${t.scale}`);
      return ct;
    }
    case 'output':
      outputs.set(op.tensor!, ev.saveCiphertext(a!));
      return undefined;
    case 'encode':
      return encode(op);
    case 'add':
      return ev.add(a!, b!);
    case 'sub':
      return ev.sub(a!, b!);
    case 'negate':
      return ev.negate(a!);
    case 'add_plain':
      return ev.addPlain(a!, b!);
    case 'mul_plain':
      return ev.mulPlain(a!, b!);
    case 'mul':
      return ev.mul(a!, b!);
    case 'relinearize':
      return ev.relinearize(a!);
    case 'rescale':
      return ev.rescale(a!);
    case 'mod_switch':
      return ev.modSwitch(a!);
    case 'rotate':
      return ev.rotate(a!, op.step!);
    case 'refresh':
      throw new Error('internal: refreshes run by rounds (refreshRound)');
  }
}

/** Packs and encrypts the program's inputs (row-major [tokens, length] values per tensor). */
export function encryptInputs(program: FheProgram, client: CkksClient, tensors: Record<string, ArrayLike<number>>): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const op of program.ops) {
    if (op.kind !== 'input') continue;
    const data = tensors[op.tensor!];
    if (!data) throw new FhecError(`missing input "${op.tensor}"`, { field: op.tensor });
    const t = op.result!.type;
    out.set(op.tensor!, client.encrypt(packSlots(op.layout!, program.slots, data), t.level!, t.scale!));
  }
  return out;
}

export interface DecryptedOutput {
  values: Float64Array;
  /** Simulator only: predicted error standard deviation per element. */
  predictedError?: Float64Array;
}

export function decryptOutputs(program: FheProgram, client: CkksClient, outputs: Map<string, Uint8Array>): Map<string, DecryptedOutput> {
  const res = new Map<string, DecryptedOutput>();
  for (const op of program.ops) {
    if (op.kind !== 'output') continue;
    const bytes = outputs.get(op.tensor!);
    if (!bytes) throw new FhecError(`output "${op.tensor}" was not produced`);
    const d: DecryptedOutput = { values: unpackSlots(op.layout!, client.decrypt(bytes)) };
    if (client.predictedError) d.predictedError = unpackSlots(op.layout!, client.predictedError(bytes));
    res.set(op.tensor!, d);
  }
  return res;
}

export interface RunResult {
  outputs: Map<string, DecryptedOutput>;
  execution: ExecuteResult;
  /** Traffic with the key holder, when the program refreshes. */
  refresh?: RefreshTraffic;
  /** The backend's label; for the simulator it says that this is a simulation. */
  label: string;
}

export interface RunOptions {
  /** The refresh mask policy (hiding bits aimed at and required; `valueBound` declares one bound for every refresh point); defaults in runtime/refresh/mask.ts. */
  mask?: Partial<MaskPolicy>;
  trace?: ExecutionTrace;
  /** Bound on |x| per refreshed value (a plan's refreshBounds); required when the program refreshes, unless mask.valueBound declares one. */
  refreshBounds?: ReadonlyMap<string, number>;
  /** Records every refreshed ciphertext (--audit-refresh). */
  audit?: RefreshAudit;
  /** Evaluation worker threads on seal (runtime/parallel/; default 1: this thread). */
  workers?: number;
}

/** Each refreshed value's bound: the plan's, or the one bound the caller declared; none is an error. */
function boundsForRun(program: FheProgram, options: RunOptions): Map<string, number> {
  const out = new Map<string, number>();
  for (const op of program.ops) {
    if (op.kind !== 'refresh') continue;
    const name = op.args[0]!.name;
    const b = options.refreshBounds?.get(name) ?? options.mask?.valueBound;
    if (b === undefined) throw new FhecError(`refresh of %${name} has no bound on |x| to size its mask (the plan lists none, and no bound was declared)`, { node: `%${name}` });
    out.set(name, b);
  }
  return out;
}

/**
 * The refresher of one run of a program, with the client as key holder: the client derives the refresh
 * schedule from the program and its bounds (one step) and accepts nothing else. `finish` after the run
 * checks that every scheduled refresh happened. No refresher when the program has no refresh op.
 */
export function planRefresher(
  program: FheProgram,
  client: CkksClient,
  evaluator: CkksEvaluator,
  options: Pick<RunOptions, 'mask' | 'refreshBounds' | 'audit'>,
): { refresher?: MaskedRefresher; finish(): void } {
  options.audit?.nextRun();
  if (!program.ops.some((op) => op.kind === 'refresh')) return { finish: () => {} };
  const bounds = boundsForRun(program, options);
  const guard = new RefreshScheduleGuard(() => refreshPointsOf(program, bounds));
  guard.beginStep(0);
  // The key holder (here the client) requires the same floor the caller set for the evaluator's masks.
  const holder = new RefreshKeyHolder(client, guard, options.mask?.minHidingBits);
  const refresher = new MaskedRefresher(evaluator, holder.transport(), { mask: { ...options.mask, bounds }, audit: options.audit });
  return { refresher, finish: () => guard.endStep() };
}

/**
 * Whole round trip: keys on a client, evaluation on an evaluator made from public keys, decryption.
 * Refreshes go to the client acting as key holder, through byte messages only.
 */
export async function runProgram(
  program: FheProgram,
  params: CkksParameters,
  backend: CkksBackend,
  tensors: Record<string, ArrayLike<number>>,
  options: RunOptions = {},
): Promise<RunResult> {
  const client = await backend.createClient(params, keyRequestFor(program));
  const keys = client.evaluationKeys();
  const evaluator = await backend.createEvaluator(params, keys);
  // Loaded on demand: the pool's module imports this one.
  const pool = (options.workers ?? 1) > 1 && !backend.simulated ? await (await import('../parallel/pool.js')).WorkerPool.create(options.workers!, params, keys) : undefined;
  try {
    const refreshing = planRefresher(program, client, evaluator, options);
    const encrypted = encryptInputs(program, client, tensors);
    const execution = pool
      ? await pool.run(program, evaluator, encrypted, { refresher: refreshing.refresher, trace: options.trace })
      : executeProgram(program, evaluator, encrypted, { refresher: refreshing.refresher, trace: options.trace });
    refreshing.finish();
    const res: RunResult = { outputs: decryptOutputs(program, client, execution.outputs), execution, label: backend.label };
    if (refreshing.refresher) res.refresh = refreshing.refresher.traffic;
    return res;
  } finally {
    await pool?.dispose();
    evaluator.dispose();
    client.dispose();
  }
}
