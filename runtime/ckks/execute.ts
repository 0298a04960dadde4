// Executes a managed FHE program on any backend's evaluator (through the one engine, ProgramRuntime),
// and the client-side helpers around it: which keys a program needs, packing and encrypting its
// inputs, decrypting and unpacking its outputs, the key holder of a run.

import { FhecError } from '../../ir/errors.js';
import { packSlots, unpackSlots } from '../../ir/fhe/layout.js';
import type { FheProgram } from '../../ir/fhe/types.js';
import { planChainRotationKeys } from '../../ir/ckks/rotation-keys.js';
import type { CkksBackend, CkksClient, CkksEvaluator, KeyRequest } from '../backend.js';
import { RefreshKeyHolder } from '../refresh/key-holder.js';
import type { RefreshAudit } from '../refresh/audit.js';
import type { MaskPolicy } from '../refresh/mask.js';
import { MaskedRefresher, type RefreshTraffic } from '../refresh/refresher.js';
import { refreshPointsOf, RefreshScheduleGuard } from '../refresh/schedule.js';
import type { CkksParameters } from '../../ir/ckks/params.js';
import { ProgramRuntime, type ExecuteOptions, type ExecuteResult, type ExecutionTrace } from './program-runtime.js';

export type { OpStats, ExecuteResult, ExecutionTrace } from './program-runtime.js';

/**
 * Galois steps and relinearization the program needs: a key per rotation step, or, when those keys
 * would not fit the key budget (rotation-keys.ts; SEAL's wasm heap is 4 GiB), the signed power-of-two
 * keys its rotations are composed from, as the parameter search priced them.
 */
export function keyRequestFor(program: FheProgram): KeyRequest {
  const steps = new Set<number>();
  let relin = false;
  for (const op of program.ops) {
    if (op.kind === 'rotate') steps.add(op.step!);
    if (op.kind === 'relinearize') relin = true;
  }
  return { galoisSteps: budgetedKeySteps(program, steps) ?? [...steps].sort((a, b) => a - b), relin };
}

/**
 * The composed key set when a key per step would not fit the budget; undefined when they fit, and also
 * when not even the power-of-two keys fit (a plan for a very long chain, e.g. N=32768 with 21 primes at
 * 210 MiB a key): such a plan runs on the simulator, and on SEAL stops with its out-of-memory error.
 */
function budgetedKeySteps(program: FheProgram, steps: Set<number>): number[] | undefined {
  if (!program.chain) return undefined;
  try {
    const keys = planChainRotationKeys(program.chain, steps);
    return keys.composed ? keys.keySteps : undefined;
  } catch (e) {
    if (e instanceof FhecError) return undefined;
    throw e;
  }
}

/** Runs the program on the evaluator: the engine (program-runtime.ts) stepped through the program itself. */
export function executeProgram(
  program: FheProgram,
  ev: CkksEvaluator,
  inputs: Map<string, Uint8Array>,
  options: ExecuteOptions = {},
): ExecuteResult {
  const rt = new ProgramRuntime(program, ev, inputs, options);
  try {
    while (!rt.done) rt.step();
  } catch (e) {
    rt.abort();
    throw e;
  }
  return rt.finish();
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
  /** Refresh masks made ahead (by the mask thread, or while waiting on the key holder) and how many refreshes used one. */
  masks?: { made: number; supplied: number; used: number };
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
  /** Refresh masks made on a helper thread (seal, one evaluator thread; runtime/seal/mask-supply.ts). */
  maskThread?: boolean;
  /** The key holder returns the plan's rotations of refresh results (seal, one evaluator thread; runtime/refresh/refresher.ts keyHolderRotations). */
  keyHolderRotations?: boolean;
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
  options: Pick<RunOptions, 'mask' | 'refreshBounds' | 'audit' | 'keyHolderRotations'>,
): { refresher?: MaskedRefresher; finish(): void } {
  options.audit?.nextRun();
  if (!program.ops.some((op) => op.kind === 'refresh')) return { finish: () => {} };
  const bounds = boundsForRun(program, options);
  const guard = new RefreshScheduleGuard(() => refreshPointsOf(program, bounds));
  guard.beginStep(0);
  // The key holder (here the client) requires the same floor the caller set for the evaluator's masks.
  const holder = new RefreshKeyHolder(client, guard, options.mask?.minHidingBits);
  const refresher = new MaskedRefresher(evaluator, holder.transport(), { mask: { ...options.mask, bounds }, audit: options.audit, keyHolderRotations: options.keyHolderRotations });
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
  const evaluator = await backend.createEvaluator(params, keys, { maskSupply: (options.workers ?? 1) <= 1 && options.maskThread === true });
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
    if (refreshing.refresher) {
      res.refresh = refreshing.refresher.traffic;
      const m = refreshing.refresher.preparedMasks;
      if (m.made + m.supplied > 0) res.masks = m;
    }
    return res;
  } finally {
    await pool?.dispose();
    evaluator.dispose();
    client.dispose();
  }
}
