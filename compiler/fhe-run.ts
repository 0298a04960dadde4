// Runs a compiled plan: the client makes the keys and encrypts the named input tensors as the plan's
// interface packs them; the evaluator, built from the public, relinearization and Galois keys only,
// executes the program; the client decrypts and unpacks the outputs. A session (client + evaluator for
// one parameter set and key set) can be reused across plans to skip key generation.

import { FhecError } from '../ir/errors.js';
import type { FheProgram } from '../ir/fhe/types.js';
import { Tensor } from '../ir/tensor.js';
import { packCiphertext, unpackTensor, type PlanInterface } from '../passes/fhe/lower/interface.js';
import type { CkksBackend, CkksClient, CkksEvaluator, KeyRequest } from '../runtime/backend.js';
import { WorkerPool } from '../runtime/parallel/pool.js';
import { executeProgram, keyRequestFor, planRefresher, type ExecutionTrace, type OpStats } from '../runtime/ckks/execute.js';
import type { RefreshAudit } from '../runtime/refresh/audit.js';
import type { MaskPolicy } from '../runtime/refresh/mask.js';
import { parametersId, slotsOf, type CkksParameters } from '../ir/ckks/params.js';
import { DEFAULT_KEY_BUDGET_BYTES, normalizeStep, planRotationKeys } from '../ir/ckks/rotation-keys.js';
import { readArithmeticSections, type PlanInterfaceJson } from '../runtime/plan/interface-schema.js';
import { planFromDocument, readPlanJson, type Plan } from '../runtime/plan/plan.js';
import { sealBackend } from '../runtime/seal/backend.js';
import { checkInputRanges, type InputRanges } from './input-ranges.js';
import { simBackend } from '../runtime/sim/backend.js';

export function backendByName(name: string): CkksBackend {
  if (name === 'seal') return sealBackend;
  if (name === 'sim') return simBackend;
  throw new FhecError(`unknown backend '${name}' (use seal or sim)`, { field: '--backend' });
}

/** The line printed with every run: real encryption or simulation. */
export function backendLabel(backend: CkksBackend): string {
  return backend.simulated
    ? `SIMULATION (nothing encrypted): ${backend.label.replace(/^SIMULATION:\s*/, '')}`
    : `encrypted with SEAL: ${backend.label}`;
}

export interface FhePlanFile {
  file: string;
  plan: Plan;
  interface: PlanInterface;
  /** The interval each encrypted input must lie in. */
  inputRanges: InputRanges;
  /** The key-memory budget the plan's Galois keys were planned for. */
  keyBudgetBytes?: number;
}

// The interface's schema lives with the plan reader (runtime/plan/interface-schema.ts); the lowering
// defines the type it writes. They must describe the same object.
const _ifaceTypes: [PlanInterface, PlanInterfaceJson] = [{} as PlanInterfaceJson, {} as PlanInterface];
void _ifaceTypes;

/** Loads and validates a plan written by `fhec compile` (schema, security, program, tensor interface). */
export function loadFhePlan(file: string): FhePlanFile {
  const doc = readPlanJson(file);
  const plan = planFromDocument(doc, file);
  const sections = readArithmeticSections(doc, plan.program, file);
  const out: FhePlanFile = { file, plan, interface: sections.interface, inputRanges: sections.inputRanges };
  if (sections.keyBudgetBytes !== undefined) out.keyBudgetBytes = sections.keyBudgetBytes;
  return out;
}

/** Checks input tensors against the plan: names, dtypes, dims; one clear error. */
export function checkRunInputs(iface: PlanInterface, inputs: Record<string, Tensor>, file?: string): void {
  const declared = new Map(iface.inputs.map((p) => [p.name, p]));
  const missing = iface.inputs.filter((p) => !(p.name in inputs)).map((p) => `'${p.name}'`);
  const extra = Object.keys(inputs).filter((n) => !declared.has(n)).map((n) => `'${n}'`);
  if (missing.length || extra.length) {
    const parts: string[] = [];
    if (missing.length) parts.push(`missing input(s) ${missing.join(', ')}`);
    if (extra.length) parts.push(`unknown input(s) ${extra.join(', ')}`);
    throw new FhecError(`${parts.join('; ')} (the plan's inputs: ${iface.inputs.map((p) => p.name).join(', ')})`, { file });
  }
  for (const p of iface.inputs) {
    const t = inputs[p.name]!;
    const field = `inputs.${p.name}`;
    if (t.dtype !== p.dtype) throw new FhecError(`dtype is ${t.dtype} but the plan expects ${p.dtype}`, { file, field });
    if (t.dims.join(',') !== p.dims.join(',')) {
      throw new FhecError(`dims [${t.dims.join(', ')}] do not match the plan's [${p.dims.join(', ')}]`, { file, field });
    }
  }
}

/** A client (secret key) and an evaluator (public material only) for one parameter set and key set. */
export interface FheSession {
  backend: CkksBackend;
  params: CkksParameters;
  client: CkksClient;
  evaluator: CkksEvaluator;
  keys: KeyRequest;
  keysMs: number;
  /** Evaluation workers (seal, --workers > 1). */
  pool?: WorkerPool;
  dispose(): Promise<void>;
}

export async function openFheSession(backend: CkksBackend, params: CkksParameters, keys: KeyRequest, workers = 1, options: { maskThread?: boolean } = {}): Promise<FheSession> {
  const t0 = performance.now();
  const client = await backend.createClient(params, keys);
  // Only the serialized evaluation keys cross over: the evaluator (and each worker) never sees the secret key.
  const evaluationKeys = client.evaluationKeys();
  const evaluator = await backend.createEvaluator(params, evaluationKeys, { maskSupply: workers <= 1 && options.maskThread === true });
  const pool = workers > 1 && !backend.simulated ? await WorkerPool.create(workers, params, evaluationKeys) : undefined;
  return {
    backend,
    params,
    client,
    evaluator,
    keys,
    keysMs: performance.now() - t0,
    ...(pool ? { pool } : {}),
    async dispose() {
      await pool?.dispose();
      evaluator.dispose();
      client.dispose();
    },
  };
}

/** The keys a program needs on these parameters, Galois keys planned within the budget. */
export function keysFor(program: FheProgram, params: CkksParameters, budgetBytes = DEFAULT_KEY_BUDGET_BYTES): KeyRequest {
  const req = keyRequestFor(program);
  return { galoisSteps: planRotationKeys(params, req.galoisSteps, budgetBytes).keySteps, relin: req.relin };
}

export interface FheRunOptions {
  backend: CkksBackend;
  /** Required to run a plan whose parameters are below 128-bit security. */
  insecure?: boolean;
  /** Reuse these keys (same parameters, a superset of the key steps). */
  session?: FheSession;
  /** Memory the Galois keys may take (rotations are composed from power-of-two keys beyond it). */
  keyBudgetBytes?: number;
  /** The plan's input ranges: values outside are refused before encryption (they would wrap around). */
  inputRanges?: InputRanges;
  /** Per-op timings (fhec run --trace). */
  trace?: ExecutionTrace;
  /** The plan's bound on |x| per refreshed value (required when the program refreshes). */
  refreshBounds?: ReadonlyMap<string, number>;
  /** Records every refreshed ciphertext (--audit-refresh). */
  audit?: RefreshAudit;
  /** The refresh mask policy (--min-hiding-bits lowers minHidingBits; default 40, runtime/refresh/mask.ts). */
  mask?: Partial<MaskPolicy>;
  /** Evaluation worker threads on seal (runtime/parallel/; default 1). */
  workers?: number;
  /** Refresh masks made on a helper thread (seal, one evaluator thread; runtime/seal/mask-supply.ts). */
  maskThread?: boolean;
  /** The key holder returns the plan's rotations of refresh results (seal, one evaluator thread). */
  keyHolderRotations?: boolean;
}

export interface FheRunResult {
  outputs: Record<string, Tensor>;
  label: string;
  simulated: boolean;
  /** Simulator only: the predicted error standard deviation per element. */
  predictedError?: Record<string, Float64Array>;
  timings: { keysMs: number; encryptMs: number; evaluateMs: number; decryptMs: number };
  ops: Map<string, OpStats>;
}

function sessionFits(s: FheSession, params: CkksParameters, need: KeyRequest): boolean {
  if (parametersId(s.params) !== parametersId(params) || !!s.params.insecure !== !!params.insecure) return false;
  if (need.relin && !s.keys.relin) return false;
  const slots = slotsOf(params);
  const have = new Set(s.keys.galoisSteps.map((k) => normalizeStep(k, slots)));
  return need.galoisSteps.every((k) => have.has(normalizeStep(k, slots)));
}

export async function runFhe(
  program: FheProgram,
  params: CkksParameters,
  iface: PlanInterface,
  inputs: Record<string, Tensor>,
  opts: FheRunOptions,
  inputsFile?: string,
): Promise<FheRunResult> {
  if (params.insecure && !opts.insecure) {
    throw new FhecError('the plan uses parameters below 128-bit security; pass --insecure to run it anyway');
  }
  checkRunInputs(iface, inputs, inputsFile);
  if (opts.inputRanges) checkInputRanges(opts.inputRanges, inputs, inputsFile);
  const need = keysFor(program, params, opts.keyBudgetBytes);
  if (opts.session && (opts.session.backend.name !== opts.backend.name || !sessionFits(opts.session, params, need))) {
    throw new FhecError('the session was made for another backend or other parameters, or lacks keys this plan needs');
  }
  const session = opts.session ?? (await openFheSession(opts.backend, params, need, opts.workers, { maskThread: opts.maskThread }));
  try {
    const { client, evaluator } = session;
    const slots = slotsOf(params);
    const packing = new Map<string, { tensor: Tensor; runs: number[] }>();
    for (const p of iface.inputs) for (const c of p.ciphertexts) packing.set(c.fhe, { tensor: inputs[p.name]!, runs: c.runs });
    let t = performance.now();
    const encrypted = new Map<string, Uint8Array>();
    for (const op of program.ops) {
      if (op.kind !== 'input') continue;
      const p = packing.get(op.tensor!)!;
      const type = op.result!.type;
      encrypted.set(op.tensor!, client.encrypt(packCiphertext(p.runs, slots, p.tensor.data, op.tensor), type.level!, type.scale!));
    }
    const encryptMs = performance.now() - t;
    const refreshing = planRefresher(program, client, evaluator, opts);
    const execution = session.pool
      ? await session.pool.run(program, evaluator, encrypted, { refresher: refreshing.refresher, trace: opts.trace })
      : executeProgram(program, evaluator, encrypted, { refresher: refreshing.refresher, trace: opts.trace });
    refreshing.finish();
    t = performance.now();
    const outputs: Record<string, Tensor> = {};
    const predicted: Record<string, Float64Array> = {};
    for (const p of iface.outputs) {
      const slotsOf = (fhe: string): Float64Array => {
        const bytes = execution.outputs.get(fhe);
        if (!bytes) throw new FhecError(`output ciphertext "${fhe}" was not produced`);
        return client.decrypt(bytes);
      };
      outputs[p.name] = Tensor.from(p.dtype, p.dims, unpackTensor(p, slotsOf));
      if (client.predictedError) {
        predicted[p.name] = unpackTensor(p, (fhe) => client.predictedError!(execution.outputs.get(fhe)!));
      }
    }
    const decryptMs = performance.now() - t;
    const result: FheRunResult = {
      outputs,
      label: backendLabel(session.backend),
      simulated: session.backend.simulated,
      timings: { keysMs: opts.session ? 0 : session.keysMs, encryptMs, evaluateMs: execution.totalMs, decryptMs },
      ops: execution.ops,
    };
    if (client.predictedError) result.predictedError = predicted;
    return result;
  } finally {
    if (!opts.session) await session.dispose();
  }
}

/** Loads a plan file and runs it. */
export async function runFhePlanFile(
  file: string,
  inputs: Record<string, Tensor>,
  opts: FheRunOptions,
  inputsFile?: string,
): Promise<FheRunResult & { warning?: string }> {
  const loaded = loadFhePlan(file);
  const { plan } = loaded;
  if (plan.params.insecure && !opts.insecure) {
    throw new FhecError('the plan uses parameters below 128-bit security; pass --insecure to run it anyway', { file });
  }
  const budget = opts.keyBudgetBytes ?? loaded.keyBudgetBytes;
  const runOpts: FheRunOptions = { ...opts, inputRanges: loaded.inputRanges, refreshBounds: plan.refreshBounds, ...(budget ? { keyBudgetBytes: budget } : {}) };
  const r = await runFhe(plan.program, plan.params, loaded.interface, inputs, runOpts, inputsFile);
  return plan.warning ? { ...r, warning: plan.warning } : r;
}
