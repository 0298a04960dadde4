// Runs programs across evaluation worker threads (worker.ts), each with its own node-seal instance,
// evaluation keys and plaintext cache. The main thread holds the placement (placement.ts), starts each
// stage on every worker, and between stages sends the stage's refresh round to the key holder in one
// message (through the caller's refresher, on the main thread's evaluator: the workers never talk to
// the key holder, and no secret key is in any of them). Results are the same bits as executeProgram's
// on one evaluator: every op is deterministic and ciphertexts move as lossless bytes.

import { weightCache } from '../../ir/weights/cache.js';
import { MessageChannel, Worker, type TransferListItem } from 'node:worker_threads';
import { FhecError } from '../../ir/errors.js';
import type { FheProgram } from '../../ir/fhe/types.js';
import type { CkksParameters } from '../../ir/ckks/params.js';
import type { CkksEvaluator, CkksHandle, EvaluationKeys } from '../backend.js';
import type { ExecuteOptions, ExecuteResult, OpStats } from '../ckks/program-runtime.js';
import { checkRunnable, refreshRoundAsync } from '../ckks/op-semantics.js';
import type { PlaintextCacheStats } from '../ckks/plaintext-cache.js';
import { refreshStages } from '../refresh/rounds.js';
import { MaskedRefresher } from '../refresh/refresher.js';
import { topLevel } from '../../ir/ckks/params.js';
import { workerScript } from '../worker-script.js';
import { placeProgram, type Placement, type PlacementOptions } from './placement.js';
import type { CarryItem, MainToWorker, MaskedExport, StageDone, StageMasking, WorkerToMain } from './protocol.js';
import { slotMapRotations } from '../ckks/slot-map.js';

/** What the workers need to mask a stage's refresh inputs: the hiding policy, and each point's bound and target scale. */
function stageMasking(program: FheProgram, refreshes: number[], refresher: MaskedRefresher, level: number): StageMasking {
  return {
    ...refresher.hiding,
    level,
    points: refreshes.map((i) => {
      const op = program.ops[i]!;
      const name = op.args[0]!.name;
      if (op.result!.type.level !== level) throw new FhecError(`refresh gives level ${level}, the program expects ${op.result!.type.level}`, { node: `%${op.result!.name} = refresh` });
      return [name, refresher.boundFor(name), op.result!.type.scale!, op.factor ?? 1];
    }),
  };
}

export interface ParallelStats {
  workers: number;
  /** Ciphertexts moved between workers, their bytes, and the workers' time saving and loading them. */
  moved: { count: number; bytes: number; ms: number };
  /** Workers' time waiting for each other's values, summed. */
  waitMs: number;
  /** Summed op time per worker. */
  busyMs: number[];
}

export interface ParallelResult extends ExecuteResult {
  parallel: ParallelStats;
}

interface Pending {
  resolve(m: WorkerToMain): void;
  reject(e: Error): void;
}

export interface PoolRunOptions {
  /**
   * Keep this run's encoded constants in the workers' plaintext caches (default true). A generation's
   * prefill says false, as the one-thread path does: its constants recur in no later step, and would
   * push the decode steps' plaintexts out of the budget.
   */
  cachePlaintexts?: boolean;
}

export interface WorkerPoolOptions {
  /** Plaintext cache budget per worker (bytes; 0: none). */
  plaintextBudget?: number;
  placement?: PlacementOptions;
}

export class WorkerPool {
  private readonly pending: Pending[][];
  private readonly placements = new WeakMap<FheProgram, { id: number; placement: Placement }>();
  private nextProgram = 1;
  private nextRun = 1;
  private broken?: Error;
  /** Each worker's plaintext cache after the last run. */
  readonly plaintexts: (PlaintextCacheStats | undefined)[];
  /** Each worker's refresh masks made while it waited for the key holder, and used, so far (mask-stock.ts). */
  readonly masks: ({ made: number; used: number } | undefined)[];

  private constructor(
    private readonly workers: Worker[],
    private readonly options: WorkerPoolOptions,
  ) {
    this.pending = workers.map(() => []);
    this.plaintexts = workers.map(() => undefined);
    this.masks = workers.map(() => undefined);
    workers.forEach((w, i) => {
      w.on('message', (m: WorkerToMain) => {
        const p = this.pending[i]!.shift();
        if (!p) return;
        if (m.kind === 'error') p.reject(m.fhec ? new FhecError(m.message, m.where) : new Error(`evaluation worker ${i}: ${m.message}`));
        else p.resolve(m);
      });
      w.on('error', (e) => this.fail(new Error(`evaluation worker ${i} stopped: ${e.message}`)));
      w.on('exit', (code) => code !== 0 && this.fail(new Error(`evaluation worker ${i} exited with code ${code}`)));
    });
  }

  get size(): number {
    return this.workers.length;
  }

  /** Starts `size` workers, each loading the evaluation keys (public material only). */
  static async create(size: number, params: CkksParameters, keys: EvaluationKeys, options: WorkerPoolOptions = {}): Promise<WorkerPool> {
    if (!Number.isInteger(size) || size < 1) throw new FhecError(`--workers must be a positive integer, got ${size}`);
    if (keys.backend !== 'seal') throw new FhecError(`evaluation workers run the seal backend; ${keys.backend} runs on one thread`);
    const entry = await workerScript(import.meta.url, 'worker');
    // Each worker streams referenced weights through its own cache, with this thread's budget.
    const workers = Array.from({ length: size }, () => new Worker(entry, { workerData: { weightCacheBytes: weightCache.stats.budgetBytes } }));
    const pool = new WorkerPool(workers, options);
    const peers = workers.map(() => new Array<MessageChannel['port1'] | undefined>(size).fill(undefined));
    for (let i = 0; i < size; i++) {
      for (let j = i + 1; j < size; j++) {
        const ch = new MessageChannel();
        peers[i]![j] = ch.port1;
        peers[j]![i] = ch.port2;
      }
    }
    try {
      await Promise.all(
        workers.map((_, i) =>
          pool.request(i, { kind: 'init', params, keys, plaintextBudget: options.plaintextBudget ?? 0, peers: peers[i]! }, peers[i]!.filter((p) => p !== undefined)),
        ),
      );
    } catch (e) {
      await pool.dispose();
      throw e;
    }
    return pool;
  }

  private fail(e: Error): void {
    this.broken ??= e;
    for (const list of this.pending) for (const p of list.splice(0)) p.reject(e);
  }

  private post(i: number, m: MainToWorker, transfer: readonly TransferListItem[] = []): void {
    if (this.broken) throw this.broken;
    this.workers[i]!.postMessage(m, transfer as TransferListItem[]);
  }

  private request(i: number, m: MainToWorker, transfer: readonly TransferListItem[] = []): Promise<WorkerToMain> {
    return new Promise((resolve, reject) => {
      if (this.broken) return reject(this.broken);
      this.pending[i]!.push({ resolve, reject });
      this.workers[i]!.postMessage(m, transfer as TransferListItem[]);
    });
  }

  /** The program's placement; the program and each worker's actions go to the workers once. */
  placementOf(program: FheProgram): { id: number; placement: Placement } {
    let p = this.placements.get(program);
    if (!p) {
      p = { id: this.nextProgram++, placement: placeProgram(program, this.size, this.options.placement) };
      this.placements.set(program, p);
      for (let i = 0; i < this.size; i++) this.post(i, { kind: 'program', id: p.id, program, actions: p.placement.actions[i]! });
    }
    return p;
  }

  /**
   * executeProgram across the workers. `ev` is the main thread's evaluator: it loads each round's
   * refresh inputs for the refresher and saves the fresh ciphertexts for the workers.
   */
  async run(program: FheProgram, ev: CkksEvaluator, inputs: Map<string, Uint8Array>, options: Pick<ExecuteOptions, 'refresher' | 'trace'> & PoolRunOptions = {}): Promise<ParallelResult> {
    checkRunnable(program, ev);
    const { id, placement } = this.placementOf(program);
    const run = this.nextRun++;
    const rounds = refreshStages(program);
    const stats = new Map<string, OpStats>();
    const parallel: ParallelStats = { workers: this.size, moved: { count: 0, bytes: 0, ms: 0 }, waitMs: 0, busyMs: new Array<number>(this.size).fill(0) };
    const outputs = new Map<string, Uint8Array>();
    const count = (kind: string, ms: number): void => {
      const s = stats.get(kind) ?? { count: 0, ms: 0 };
      s.count++;
      s.ms += ms;
      stats.set(kind, s);
    };
    const trace = options.trace;
    trace?.begin(program);
    const t0 = performance.now();
    // Each worker reads the inputs its input ops take.
    const inputsOf = placement.actions.map((stages) =>
      stages.flat().flatMap((a): [string, Uint8Array][] => {
        if (a.do !== 'op' || program.ops[a.op]!.kind !== 'input') return [];
        const tensor = program.ops[a.op]!.tensor!;
        const bytes = inputs.get(tensor);
        if (!bytes) throw new FhecError(`no ciphertext given for input "${tensor}"`);
        return [[tensor, bytes]];
      }),
    );
    let fresh: [string, Uint8Array][][] = placement.actions.map(() => []);
    let freshMasked: [string, string, Uint8Array][][] = placement.actions.map(() => []);
    // The client-aided refresher: the workers mask and unmask their own ciphertexts, in parallel, and
    // the main thread only assembles each round's request. Any other refresher gets the raw ciphertexts.
    const masked = options.refresher instanceof MaskedRefresher ? options.refresher : undefined;
    const top = topLevel(ev.params);
    try {
      for (let s = 0; s < rounds.stages.length; s++) {
        const done = (await Promise.all(
          placement.actions.map((_, w) =>
            this.request(w, {
              kind: 'stage',
              run,
              program: id,
              stage: s,
              fresh: fresh[w]!,
              freshMasked: freshMasked[w]!,
              inputs: s === 0 ? inputsOf[w]! : [],
              ...(s === 0 && options.cachePlaintexts === false ? { cachePlaintexts: false } : {}),
              ...(masked && rounds.stages[s]!.refreshes.length > 0 ? { masking: stageMasking(program, rounds.stages[s]!.refreshes, masked, top) } : {}),
              ...(masked && (rounds.stages[s + 1]?.refreshes.length ?? 0) > 0 ? { nextMasking: stageMasking(program, rounds.stages[s + 1]!.refreshes, masked, top) } : {}),
            }),
          ),
        )) as StageDone[];
        const exported = new Map<string, Uint8Array>();
        const maskedExports = new Map<string, MaskedExport>();
        done.forEach((d, w) => {
          for (const [tensor, bytes] of d.outputs) outputs.set(tensor, bytes);
          for (const [name, bytes] of d.exports) exported.set(name, bytes);
          for (const m of d.masked) maskedExports.set(m.value, m);
          for (const [i, ms] of d.opMs) {
            count(program.ops[i]!.kind, ms);
            trace?.op(i, program.ops[i]!.kind, ms);
            parallel.busyMs[w]! += ms;
          }
          parallel.moved.count += d.moved.count;
          parallel.moved.bytes += d.moved.bytes;
          parallel.moved.ms += d.moved.ms;
          parallel.waitMs += d.waitMs;
        });
        fresh = placement.actions.map(() => []);
        freshMasked = placement.actions.map(() => []);
        const refreshes = rounds.stages[s]!.refreshes;
        if (refreshes.length === 0) continue;
        const start = performance.now();
        if (masked) {
          // In the order the key holder's schedule expects (rounds.ts), one request.
          const items = refreshes.map((i) => maskedExports.get(program.ops[i]!.args[0]!.name)!);
          const replies = await masked.exchangeMasked(items);
          refreshes.forEach((i, k) => freshMasked[placement.refreshHome.get(i)!]!.push([program.ops[i]!.result!.name, items[k]!.value, replies[k]!]));
        } else {
          const loaded = new Map<string, CkksHandle>();
          try {
            for (const [name, bytes] of exported) loaded.set(name, ev.loadCiphertext(bytes));
            const results = await refreshRoundAsync(program, refreshes, ev, (name) => loaded.get(name)!, options.refresher);
            refreshes.forEach((i, k) => {
              fresh[placement.refreshHome.get(i)!]!.push([program.ops[i]!.result!.name, ev.saveCiphertext(results[k]!)]);
              ev.free(results[k]!);
            });
          } finally {
            for (const h of loaded.values()) ev.free(h);
          }
        }
        const ms = (performance.now() - start) / refreshes.length;
        for (const i of refreshes) {
          count('refresh', ms);
          trace?.op(i, 'refresh', ms);
        }
      }
    } catch (e) {
      // Other workers may be waiting for a value that will never come: the pool is done.
      this.fail(e instanceof Error ? e : new Error(String(e)));
      throw e;
    } finally {
      if (!this.broken) {
        const ended = await Promise.all(this.workers.map((_, w) => this.request(w, { kind: 'end', run }).catch(() => undefined)));
        ended.forEach((m, w) => {
          if (m?.kind === 'ended') {
            this.plaintexts[w] = m.plaintexts;
            this.masks[w] = m.masks;
          }
        });
      }
    }
    trace?.end();
    return { outputs, ops: stats, totalMs: performance.now() - t0, simulated: ev.simulated, parallel };
  }

  /**
   * Refreshes ciphertexts outside a program (the KV-cache carry) on the workers: each worker moves its
   * items' slots (when a map is given) and masks them, in parallel; `exchange` sends all the masked items
   * to the key holder in one round trip and returns the replies in order; each worker unmasks its own.
   * Items go to workers by cost (rotations of their slot maps), longest first. Returns the fresh
   * ciphertexts in order.
   */
  async carry(items: CarryItem[], slots: number, hiding: { hidingBits: number; minHidingBits: number }, exchange: (masked: MaskedExport[]) => Promise<Uint8Array[]>): Promise<Uint8Array[]> {
    if (items.length === 0) return [];
    const carry = this.nextRun++;
    const load = new Array<number>(this.size).fill(0);
    const home = new Array<number>(items.length);
    const cost = items.map((it) => 1 + (it.map ? slotMapRotations(it.map, slots) : 0));
    [...cost.keys()].sort((a, b) => cost[b]! - cost[a]!).forEach((i) => {
      const w = load.indexOf(Math.min(...load));
      home[i] = w;
      load[w]! += cost[i]!;
    });
    const byWorker = load.map((_, w) => items.flatMap((_, i) => (home[i] === w ? [i] : [])));
    const used = byWorker.flatMap((idx, w) => (idx.length > 0 ? [w] : []));
    try {
      const masked = new Array<MaskedExport>(items.length);
      const replies = await Promise.all(used.map((w) => this.request(w, { kind: 'carry-mask', carry, items: byWorker[w]!.map((i) => items[i]!), hiding })));
      replies.forEach((m, k) => {
        if (m.kind !== 'carry-masked') throw new Error(`internal: worker ${used[k]} answered ${m.kind} to a carry`);
        byWorker[used[k]!]!.forEach((i, j) => (masked[i] = m.masked[j]!));
      });
      const fresh = await exchange(masked);
      if (fresh.length !== items.length) throw new FhecError(`carry reply holds ${fresh.length} ciphertexts, expected ${items.length}`);
      const out = new Array<Uint8Array>(items.length);
      const done = await Promise.all(used.map((w) => this.request(w, { kind: 'carry-unmask', carry, replies: byWorker[w]!.map((i) => fresh[i]!) })));
      done.forEach((m, k) => {
        if (m.kind !== 'carry-fresh') throw new Error(`internal: worker ${used[k]} answered ${m.kind} to a carry`);
        byWorker[used[k]!]!.forEach((i, j) => (out[i] = m.fresh[j]!));
      });
      return out;
    } catch (e) {
      // A worker may still hold masks for this carry: the pool is done.
      this.fail(e instanceof Error ? e : new Error(String(e)));
      throw e;
    }
  }

  async dispose(): Promise<void> {
    for (let i = 0; i < this.workers.length; i++) {
      try {
        this.workers[i]!.postMessage({ kind: 'close' } satisfies MainToWorker);
      } catch {
        // already gone
      }
    }
    this.broken ??= new Error('the worker pool was closed');
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
