// The evaluator side of encrypted generation. It holds the plans and, once the client sends them,
// the public, relinearization and Galois keys: never a secret key. It runs the prefill and decode
// steps on ciphertexts, keeps the ENCRYPTED KV cache between steps (the present keys/values of the
// last step, as ciphertexts), and carries it into the next step's layout and level through a
// client-aided cache refresh (cache-refresh.ts). Refresh ops inside a step go to the key holder
// through the refresh protocol (runtime/refresh). Carries and refreshes follow the step's refresh
// schedule (step-schedule.ts), the one the key holder checks them against, with the plans' bounds
// sizing every mask. It talks to the client only through `handle`
// (bytes in, bytes out) and to the key holder only through a byte channel. Encoded weights stay in a
// plaintext cache across the steps (runtime/ckks/plaintext-cache.ts): the decode plans for P and P+1
// share most of their constants.

import { FhecError } from '../../ir/errors.js';
import type { FheOp } from '../../ir/fhe/types.js';
import type { CkksBackend, CkksEvaluator } from '../backend.js';
import { executeProgram, keyRequestFor, type ExecutionTrace, type OpStats } from '../ckks/execute.js';
import { constantKeys, defaultPlaintextBudget, PlaintextCache } from '../ckks/plaintext-cache.js';
import { idleChain, type IdleWork } from '../ckks/idle-work.js';
import { runEmittedPlan, type EmittedPlanModule } from '../ckks/program-runtime.js';
import { parametersId, slotsOf, type CkksParameters } from '../../ir/ckks/params.js';
import { planRotationKeys } from '../../ir/ckks/rotation-keys.js';
import { MaskedRefresher, type RefreshTraffic } from '../refresh/refresher.js';
import type { RefreshAudit } from '../refresh/audit.js';
import type { MaskPolicy } from '../refresh/mask.js';
import { cacheSourceName, stepRefreshPoints } from './step-schedule.js';
import { CacheRefresher, type CacheRefreshTraffic, type CarrySource } from './cache-refresh.js';
import { decodeKeys, decodeMessage, encodeMessage, errorMessage, type LogitsBlock } from './messages.js';
import { generationSteps, shapeName, type GenerationPlanSource, type StepInputSpec, type StepInterface, type StepPlan, type StepShape } from './plan-source.js';
import type { KeyHolderChannel } from './transport.js';
import { WorkerPool, type ParallelStats } from '../parallel/pool.js';

export interface OpenReply {
  kind: 'plan';
  params: { ringDegree: number; bitSizes: number[]; scale: number; id: string };
  keys: { galoisSteps: number[]; relin: boolean };
  steps: (StepShape & { input: StepInputSpec })[];
}

export interface StepStats {
  shape: StepShape;
  /** Evaluator wall time of the step (cache carry, program, refreshes), without loading the plan. */
  ms: number;
  /** Time to load (or first compile) the step's plan. */
  loadMs: number;
  ops: Record<string, OpStats>;
  refreshes: number;
  cacheRefreshes: number;
  /** Messages to the key holder in this step (refresh rounds and the cache carry), and their bytes each way. */
  keyHolder: { rounds: number; bytesToKeyHolder: number; bytesToEvaluator: number };
  /** With workers: ciphertexts moved between them, their bytes and the save/load time, per worker op time. */
  parallel?: ParallelStats;
  /** The step's encodes answered by the plaintext cache, and what it holds after the step. */
  plaintexts?: { hits: number; misses: number; evictions: number; bytes: number; reservedBytes: number; budgetBytes: number };
  /** Weight plaintexts encoded ahead (for this decode step or the next) while this step waited on the key holder. */
  prefetched?: number;
  /**
   * Refresh masks made ahead (mask-stock.ts): on this thread while waiting on the key holder, by the mask
   * thread (arrived during the step), and used by the step's refreshes.
   */
  masksAhead?: { made: number; supplied?: number; used: number };
}

export interface EvaluatorOptions {
  /** Refresh mask policy for refreshes and cache carries (runtime/refresh/mask.ts; default 40 bits hiding). */
  mask?: Partial<MaskPolicy>;
  /** Records every refreshed or carried ciphertext (--audit-refresh). */
  audit?: RefreshAudit;
  /**
   * Byte budget of the encoded-plaintext cache kept across steps (0: no cache). Default: room left in
   * node-seal's 4 GiB wasm heap beside the keys, at most 1 GiB (defaultPlaintextBudget).
   */
  plaintextCacheBytes?: number;
  /** Per-op timings of every step (fhec generate --trace). */
  trace?: ExecutionTrace;
  /**
   * Runs each step with the module emitted for its plan (`fhec compile --emit ts`) instead of executing
   * the plan's program; the module must be the plan's (runEmittedPlan checks the digests).
   */
  emitted?: (sp: StepPlan) => EmittedPlanModule;
  /**
   * Evaluation worker threads (runtime/parallel/): each with its own SEAL instance, keys and plaintext
   * cache (an equal share of plaintextCacheBytes). 1 (the default here; the CLI defaults to the core count) runs on this
   * thread. The simulator always runs on this thread.
   */
  workers?: number;
  /**
   * Make the refresh masks ahead on a helper thread that holds the public key only (SEAL, one evaluator
   * thread; runtime/seal/mask-supply.ts; `fhec generate --mask-thread`). Same results.
   */
  maskSupply?: boolean;
  /**
   * At most this many ciphertexts per message to the key holder (default: each refresh round and each
   * cache carry in one message). 1 is the unbatched protocol, kept to measure what batching saves.
   */
  ciphertextsPerMessage?: number;
  /**
   * Ask the key holder for the plan's rotations of refresh results with each refresh (one evaluator
   * thread; runtime/refresh/refresher.ts keyHolderRotations). Default off: each copy is a ciphertext more
   * to download (`fhec generate|serve --key-holder-rotations` turn it on).
   */
  keyHolderRotations?: boolean;
}

function inputOp(sp: StepPlan, tensor: string): FheOp {
  const op = sp.plan.plan.program.ops.find((o) => o.kind === 'input' && o.tensor === tensor);
  if (!op) throw new FhecError(`plan ${shapeName(sp.shape)} has no input ${tensor}`, { file: sp.plan.file });
  return op;
}

function specOf(op: FheOp): StepInputSpec {
  return { layout: op.layout!, level: op.result!.type.level!, scale: op.result!.type.scale! };
}

/** The Galois keys of several steps together: every step's own, or signed powers of two past the key budget. */
function unionKeySteps(p: CkksParameters, steps: Set<number>): number[] {
  const all = [...steps].sort((a, b) => a - b);
  try {
    const keys = planRotationKeys(p, steps);
    return keys.composed ? keys.keySteps : all;
  } catch (e) {
    if (e instanceof FhecError) return all; // not even power-of-two keys fit: as keyRequestFor
    throw e;
  }
}

/** The keys a step plan needs and the embedding input it takes. */
export function describeStep(sp: StepPlan): StepInterface {
  return { keys: keyRequestFor(sp.plan.plan.program), input: specOf(inputOp(sp, sp.plan.meta.embedding.fhe)) };
}

/** One ciphertext of a cached output (a cache split over several has one per token group). */
interface CachedValue {
  bytes: Uint8Array;
  /** First token of this ciphertext. */
  tokenStart: number;
}

function subtractTraffic(a: StepStats['keyHolder'], b: StepStats['keyHolder']): StepStats['keyHolder'] {
  return { rounds: a.rounds - b.rounds, bytesToKeyHolder: a.bytesToKeyHolder - b.bytesToKeyHolder, bytesToEvaluator: a.bytesToEvaluator - b.bytesToEvaluator };
}

/**
 * What the evaluator carries from one step to the next, as plain data: enough to go on in another
 * process (fhec serve keeps it on disk after every step, so a restarted server resumes the session
 * once the client re-sends its evaluation keys). Nothing secret: the cache is ciphertexts.
 */
export interface EvaluatorState {
  steps: StepShape[];
  /** The next step to run. */
  next: number;
  /** The shape of the last step run (its plan's outputs are the cache). */
  prev?: StepShape;
  cache: { name: string; tokenStart: number; bytes: Uint8Array }[];
}

export class GenerationEvaluator {
  readonly stats: StepStats[] = [];
  private ev?: CkksEvaluator;
  private refresher?: MaskedRefresher;
  private cacheRefresher?: CacheRefresher;
  private plaintexts?: PlaintextCache;
  private pool?: WorkerPool;
  private steps: StepShape[] = [];
  private next = 0;
  /** The encrypted KV cache: the last step's present outputs, by the model's output name. */
  private cache = new Map<string, CachedValue[]>();
  /** The plan of the last step (its outputs are the cache; the carries follow from it). */
  private prev?: StepPlan;

  constructor(
    private readonly source: GenerationPlanSource,
    private readonly backend: CkksBackend,
    private readonly keyHolder: KeyHolderChannel,
    private readonly options: EvaluatorOptions = {},
  ) {}

  /** Bytes in, bytes out. Errors go back as error messages (the client raises them). */
  async handle(request: Uint8Array): Promise<Uint8Array> {
    try {
      const { header } = decodeMessage<{ kind: string }>(request, ['open', 'keys', 'step', 'close']);
      switch (header.kind) {
        case 'open':
          return this.open(header as unknown as { promptTokens: number; maxNewTokens: number });
        case 'keys':
          return await this.acceptKeys(request);
        case 'step':
          return await this.step(request);
        default:
          await this.close();
          return encodeMessage({ kind: 'closed' });
      }
    } catch (e) {
      if (e instanceof FhecError) return errorMessage(e.format());
      throw e;
    }
  }

  snapshot(): EvaluatorState {
    const cache = [...this.cache].flatMap(([name, vs]) => vs.map((v) => ({ name, tokenStart: v.tokenStart, bytes: v.bytes })));
    return { steps: [...this.steps], next: this.next, ...(this.prev ? { prev: this.prev.shape } : {}), cache };
  }

  /** Continues a session from a snapshot (keys come after, as at the start). */
  restore(state: EvaluatorState): void {
    if (state.next > state.steps.length || (state.next > 0) !== (state.prev !== undefined)) throw new FhecError('the saved session state is inconsistent');
    this.steps = [...state.steps];
    this.next = state.next;
    this.prev = state.prev ? this.source.load(state.prev) : undefined;
    this.cache.clear();
    for (const c of state.cache) {
      const list = this.cache.get(c.name) ?? [];
      list.push({ bytes: c.bytes, tokenStart: c.tokenStart });
      this.cache.set(c.name, list);
    }
  }

  /** Bytes of ciphertext state held between steps (the KV cache). */
  get cacheBytes(): number {
    let n = 0;
    for (const vs of this.cache.values()) for (const v of vs) n += v.bytes.length;
    return n;
  }

  /** Traffic with the key holder so far: refresh ops, and cache carries. */
  get keyHolderTraffic(): { refresh?: RefreshTraffic; cache?: CacheRefreshTraffic } {
    return { refresh: this.refresher?.traffic, cache: this.cacheRefresher?.traffic };
  }

  private open(h: { promptTokens: number; maxNewTokens: number }): Uint8Array {
    const n = h.promptTokens;
    const N = h.maxNewTokens;
    if (!Number.isInteger(n) || n < 1) throw new FhecError('the prompt must have at least one token');
    if (!Number.isInteger(N) || N < 1) throw new FhecError('max new tokens must be a positive integer');
    if (n + N - 1 > this.source.maxContext) {
      throw new FhecError(`a prompt of ${n} tokens and ${N} new tokens needs a context of ${n + N - 1}, the plan was compiled for ${this.source.maxContext}`);
    }
    this.steps = generationSteps(this.source, n, N);
    this.next = 0;
    this.cache.clear();
    this.prev = undefined;
    const galois = new Set<number>();
    let relin = false;
    const steps = this.steps.map((shape) => {
      const d = this.source.describe ? this.source.describe(shape) : describeStep(this.source.load(shape));
      d.keys.galoisSteps.forEach((s) => galois.add(s));
      relin ||= d.keys.relin;
      return { ...shape, input: d.input };
    });
    const p = this.source.params;
    // Cache carries move slots homomorphically (cache-refresh.ts): any shift, from power-of-two keys.
    if (this.steps.length > 1) for (let s = 1; s < slotsOf(p); s *= 2) galois.add(s);
    const reply: OpenReply = {
      kind: 'plan',
      params: { ringDegree: p.ringDegree, bitSizes: p.bitSizes, scale: p.scale, id: parametersId(p) },
      // Each step's keys fit the budget; their union may not (then composed, as in keyRequestFor).
      keys: { galoisSteps: unionKeySteps(p, galois), relin },
      steps,
    };
    return encodeMessage(reply);
  }

  private async acceptKeys(request: Uint8Array): Promise<Uint8Array> {
    const keys = decodeKeys(request);
    await this.close();
    const workers = this.options.workers ?? 1;
    this.ev = await this.backend.createEvaluator(this.source.params, keys, { maskSupply: workers <= 1 && (this.options.maskSupply ?? false) });
    const { mask, audit, ciphertextsPerMessage, keyHolderRotations } = this.options;
    this.refresher = new MaskedRefresher(this.ev, this.keyHolder, { mask, audit, ciphertextsPerMessage, keyHolderRotations });
    this.cacheRefresher = new CacheRefresher(this.ev, this.keyHolder, mask, audit, ciphertextsPerMessage);
    const keyBytes = (keys.galoisKeys?.byteLength ?? 0) + (keys.relinKeys?.byteLength ?? 0);
    const budget = this.options.plaintextCacheBytes ?? defaultPlaintextBudget(keyBytes);
    // The budget is shared: each worker encodes about its share of the constants (those of its ops), and
    // the machine's memory, not one wasm heap, is what several workers fill.
    if (workers > 1 && !this.backend.simulated) this.pool = await WorkerPool.create(workers, this.source.params, keys, { plaintextBudget: Math.floor(budget / workers) });
    else if (budget > 0) this.plaintexts = new PlaintextCache(this.ev, budget);
    return encodeMessage({ kind: 'ready' });
  }

  private carryHere(ev: CkksEvaluator, carry: CarrySource[], idle?: IdleWork): Uint8Array[] {
    const items = carry.map((c) => ({ ...c, ct: ev.loadCiphertext(c.bytes) }));
    try {
      return this.cacheRefresher!.refresh(items, idle);
    } finally {
      for (const c of items) ev.free(c.ct);
    }
  }

  private async step(request: Uint8Array): Promise<Uint8Array> {
    const { header, blobs } = decodeMessage<{ kind: 'step'; index: number; logits: boolean }>(request, ['step']);
    const ev = this.ev;
    if (!ev || !this.refresher || !this.cacheRefresher) throw new FhecError('no evaluation keys yet: send the keys before the first step');
    if (header.index !== this.next || this.next >= this.steps.length) throw new FhecError(`step ${header.index} out of order (expected ${this.next} of ${this.steps.length})`);
    if (blobs.length !== 1) throw new FhecError('a step carries exactly one ciphertext (the encrypted embeddings)');
    const tl = performance.now();
    const shape = this.steps[this.next]!;
    const sp = this.source.load(shape);
    if (parametersId(sp.plan.plan.params) !== parametersId(this.source.params)) throw new FhecError(`plan ${shapeName(shape)} has other CKKS parameters than the generation plan`, { file: sp.plan.file });
    // Content keys of the constants: hashed once per loaded plan, counted as loading.
    if (this.plaintexts && shape.kind === 'decode') constantKeys(sp.plan.plan.program);
    // The next decode step's plan too, when this thread will encode its weights ahead (prefetchWork).
    const nextShape = this.steps[this.next + 1];
    const nextPlan = this.plaintexts && !this.pool && nextShape?.kind === 'decode' ? this.source.load(nextShape) : undefined;
    if (nextPlan) constantKeys(nextPlan.plan.plan.program);
    const t0 = performance.now();
    const meta = sp.plan.meta;
    const inputs = new Map<string, Uint8Array>([[meta.embedding.fhe, blobs[0]!]]);
    const refreshes0 = this.refresher.traffic.ciphertexts;
    const cache0 = this.cacheRefresher.traffic.ciphertexts;
    const traffic0 = this.keyHolderTotals();
    // This step's refresh points, as the key holder derives them from the plans (step-schedule.ts).
    const points = stepRefreshPoints(this.prev, sp);
    this.refresher.step = this.cacheRefresher.step = header.index;
    this.refresher.setBounds(sp.plan.plan.refreshBounds);
    // The cache the last step left, moved into this step's layout at its input level.
    // A split cache moves by pieces (each source ciphertext into each destination it overlaps), added up.
    const carry = points
      .filter((p) => p.kind === 'carry')
      .map((p): CarrySource => {
        const c = meta.cacheInputs.find((x) => x.fhe === p.id)!;
        const srcs = this.cache.get(cacheSourceName(c.name));
        const src = srcs?.find((x) => x.tokenStart === (p.piece?.fromStart ?? 0));
        if (!src) throw new FhecError(`no cached ${c.name}: the previous step did not produce it`);
        return { name: p.id, bytes: src.bytes, from: p.from!, to: p.to!, level: p.toLevel, scale: p.toScale, bound: p.bound, ...(p.piece ? { piece: p.piece } : {}) };
      });
    // While this thread waits on the key holder (the carry, the refresh rounds), it encodes ahead the
    // weight plaintexts this decode step and the next decode step will ask the cache for: the first
    // decode step's during the prefill, a new bucket plan's during the step before it.
    const idle = this.prefetchWork(shape, sp, nextPlan);
    const prefetched0 = this.plaintexts?.stats.prefetched ?? 0;
    const masks0 = this.refresher.preparedMasks;
    // With workers, they move and mask the cache; on one thread, this evaluator.
    const fresh = this.pool ? await this.cacheRefresher.refreshOnPool(carry, this.pool) : this.carryHere(ev, carry, idle);
    carry.forEach((c, i) => {
      const prev = inputs.get(c.name);
      if (!prev) return inputs.set(c.name, fresh[i]!);
      const [a, b] = [ev.loadCiphertext(prev), ev.loadCiphertext(fresh[i]!)];
      const sum = ev.add(a, b);
      inputs.set(c.name, ev.saveCiphertext(sum));
      for (const h of [a, b, sum]) ev.free(h);
    });
    // Decode steps only: the prefill's constants recur in no later step, and would hold SEAL pool memory.
    const plaintexts = shape.kind === 'decode' ? this.plaintexts : undefined;
    const pt0 = plaintexts?.stats;
    const run = { refresher: this.refresher, plaintexts, trace: this.options.trace, ...(idle ? { idle } : {}) };
    const emitted = this.options.emitted?.(sp);
    // Emitted modules run on this thread (one runtime call per op); plans on the worker pool when there is one.
    const exec = emitted
      ? runEmittedPlan(emitted, sp.plan.plan, sp.plan.file, ev, inputs, run)
      : this.pool
        ? await this.pool.run(sp.plan.plan.program, ev, inputs, { refresher: this.refresher, trace: this.options.trace, cachePlaintexts: shape.kind === 'decode' })
        : executeProgram(sp.plan.plan.program, ev, inputs, run);
    this.cache.clear();
    for (const o of meta.outputs) {
      if (!o.kv) continue;
      this.cache.set(
        o.name,
        o.blocks.map((blk) => {
          const bytes = exec.outputs.get(blk.fhe);
          if (!bytes) throw new FhecError(`step ${shapeName(shape)} did not output ${blk.fhe}`);
          return { bytes, tokenStart: blk.tokenStart ?? 0 };
        }),
      );
    }
    this.prev = sp;
    const logitsMeta = meta.outputs.find((o) => !o.kv);
    if (!logitsMeta || logitsMeta.blocks.length === 0) throw new FhecError('the plan outputs no logits', { file: sp.plan.file });
    const stats: StepStats = {
      shape,
      ms: performance.now() - t0,
      loadMs: t0 - tl,
      ops: Object.fromEntries(exec.ops),
      refreshes: this.refresher.traffic.ciphertexts - refreshes0,
      cacheRefreshes: this.cacheRefresher.traffic.ciphertexts - cache0,
      keyHolder: subtractTraffic(this.keyHolderTotals(), traffic0),
    };
    if (this.plaintexts) stats.prefetched = this.plaintexts.stats.prefetched - prefetched0;
    const masks1 = this.refresher.preparedMasks;
    if (masks1.made + masks1.supplied > masks0.made + masks0.supplied) {
      stats.masksAhead = { made: masks1.made - masks0.made, supplied: masks1.supplied - masks0.supplied, used: masks1.used - masks0.used };
    }
    if ('parallel' in exec) stats.parallel = exec.parallel as ParallelStats;
    const workerCaches = this.pool?.plaintexts.filter((p) => p !== undefined);
    if (shape.kind === 'decode' && workerCaches && workerCaches.length > 0) {
      // Summed over the workers' caches (cumulative counts: the step's are the difference from the last step's).
      const sum = (k: 'hits' | 'misses' | 'evictions' | 'bytes' | 'reservedBytes' | 'budgetBytes') => workerCaches.reduce((t, p) => t + p[k], 0);
      const before = this.workerCacheTotals;
      stats.plaintexts = { hits: sum('hits') - before.hits, misses: sum('misses') - before.misses, evictions: sum('evictions') - before.evictions, bytes: sum('bytes'), reservedBytes: sum('reservedBytes'), budgetBytes: sum('budgetBytes') };
      this.workerCacheTotals = { hits: sum('hits'), misses: sum('misses'), evictions: sum('evictions') };
    }
    if (plaintexts && pt0) {
      const pt = plaintexts.stats;
      const d = (k: 'hits' | 'misses' | 'evictions') => pt[k] - pt0[k];
      stats.plaintexts = { hits: d('hits'), misses: d('misses'), evictions: d('evictions'), bytes: pt.bytes, reservedBytes: pt.reservedBytes, budgetBytes: pt.budgetBytes };
    }
    this.stats.push(stats);
    this.next++;
    // A wide vocabulary's logits are several ciphertexts (column blocks, e.g. 16 of 8,192 for 128,256 tokens):
    // all are sent, with each block's layout and first column, and the client assembles the row.
    const blocks: LogitsBlock[] = logitsMeta.blocks.map((blk) => ({ layout: blk.layout, colStart: blk.colStart }));
    const logits = logitsMeta.blocks.map((blk) => exec.outputs.get(blk.fhe)!);
    return encodeMessage({ kind: 'logits', width: logitsMeta.width, blocks, stats } as { kind: string }, header.logits ? logits : []);
  }

  private workerCacheTotals = { hits: 0, misses: 0, evictions: 0 };

  /** Encodes ahead into the plaintext cache (one evaluator thread): this decode step's, then the next decode step's. */
  private prefetchWork(shape: StepShape, sp: StepPlan, next: StepPlan | undefined): IdleWork | undefined {
    const cache = this.plaintexts;
    if (!cache || this.pool) return undefined;
    const works: IdleWork[] = [];
    if (shape.kind === 'decode') works.push(cache.prefetch(() => sp.plan.plan.program));
    if (next) works.push(cache.prefetch(() => next.plan.plan.program));
    return works.length ? idleChain(works) : undefined;
  }

  private keyHolderTotals(): { rounds: number; bytesToKeyHolder: number; bytesToEvaluator: number } {
    const r = this.refresher?.traffic;
    const c = this.cacheRefresher?.traffic;
    return {
      rounds: (r?.roundTrips ?? 0) + (c?.roundTrips ?? 0),
      bytesToKeyHolder: (r?.bytesToKeyHolder ?? 0) + (c?.bytesToKeyHolder ?? 0),
      bytesToEvaluator: (r?.bytesToEvaluator ?? 0) + (c?.bytesToEvaluator ?? 0),
    };
  }

  /** Stops the worker threads too. */
  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    this.dispose();
    await pool?.dispose();
  }

  dispose(): void {
    void this.pool?.dispose();
    this.pool = undefined;
    this.workerCacheTotals = { hits: 0, misses: 0, evictions: 0 };
    this.plaintexts?.dispose();
    this.plaintexts = undefined;
    this.ev?.dispose();
    this.ev = undefined;
    this.refresher = undefined;
    this.cacheRefresher = undefined;
  }
}
