// Encoded constants kept across the runs of one evaluator (the steps of one generation). On SEAL,
// encoding a weight vector (an inverse FFT and an NTT per prime) costs about as much as a rotation,
// and the decode steps for P and P+1 encode mostly the same weights at the same level and scale.
// Entries are keyed by the constant's content hash (computed once per loaded program, not per use)
// plus level and scale, and bounded by a byte budget counted at SEAL's size of a plaintext.
// Only dense constants (weights, masks) and streamed diagonals are cached. Splats are mostly coefficients calibrated for
// each step: of the distinct plaintexts model A's decode plan for P = 9 encodes, 1350 of its 1360
// dense ones were also in the plan for P = 8, but only 28 of its 966 splats, which would hold
// 0.66 GiB of heap for those 28.

import { createHash } from 'node:crypto';
import type { FheProgram } from '../../ir/fhe/types.js';
import { constantSlots } from '../../ir/fhe/layout.js';
import { diagonalKey } from '../../ir/fhe/diagonal.js';
import type { CkksParameters } from '../../ir/ckks/params.js';
import type { CkksEvaluator, CkksHandle } from '../backend.js';
import type { IdleWork } from './idle-work.js';

/** Bytes of a SEAL plaintext at `level` (NTT form: level + 1 residues of N 64-bit words). */
export function plaintextBytes(params: CkksParameters, level: number): number {
  return (level + 1) * params.ringDegree * 8;
}

/**
 * node-seal's wasm32 heap stops one 64 KiB page short of 4 GiB, and it holds the evaluation keys,
 * the live ciphertexts and SEAL's memory pool beside the cache. Within one process it also holds the
 * client's keys.
 */
export const WASM_HEAP_BYTES = 4294901760;
const GiB = 2 ** 30;

/**
 * Default budget (`keyBytes`: the serialized Galois and relinearization keys the evaluator loads).
 * Model A at N = 16384: a decode step encodes ~0.83 GiB of distinct dense plaintexts; with its keys
 * loaded (441 MiB seeded on the wire, ~0.9 GiB in the heap) about 2.1 GiB of plaintexts fit before
 * SEAL runs out of heap, and a step's own ciphertexts peak at ~0.2 GiB. So: 1 GiB, less when the keys
 * (in the heap about twice their seeded size) leave less than 2 GiB of working room beside it.
 */
export function defaultPlaintextBudget(keyBytes: number): number {
  const room = WASM_HEAP_BYTES - 2 * keyBytes - 2 * GiB;
  return Math.max(0, Math.min(GiB, Math.floor(room)));
}

function entryKey(content: string, scale: number, level: number): string {
  return `${content}@${scale}@${level}`;
}

const keysByProgram = new WeakMap<FheProgram, Map<string, string>>();

function contentKey(values: Float64Array): string {
  return `${values.length}:${createHash('sha256').update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength)).digest('base64')}`;
}

/** Content key of every dense or diagonal constant of `program` (the ones cached), once per program object. */
export function constantKeys(program: FheProgram): Map<string, string> {
  let keys = keysByProgram.get(program);
  if (!keys) {
    keys = new Map();
    for (const c of program.constants.values()) {
      if (c.data.kind === 'dense') keys.set(c.name, contentKey(c.data.values));
      // A streamed diagonal is keyed by what it is built from (its weight's region digests, maps, geometry).
      else if (c.data.kind === 'diagonal' && c.data.matrix.source) keys.set(c.name, diagonalKey(c.data.matrix, c.data.geometry));
    }
    keysByProgram.set(program, keys);
  }
  return keys;
}

export interface PlaintextCacheStats {
  /** Encodes answered from the cache. */
  hits: number;
  /** Encodes that had to encode (and kept the plaintext, or used it once when there was no room). */
  misses: number;
  /** Misses that were not kept. */
  bypassed: number;
  /** Plaintexts encoded ahead (prefetch), for a later run, while the thread waited on the key holder. */
  prefetched: number;
  evictions: number;
  entries: number;
  /** Bytes of the plaintexts held. */
  bytes: number;
  /** What SEAL's pool holds for them: per level, the most plaintexts ever held at once (the budget bounds this). */
  reservedBytes: number;
  budgetBytes: number;
}

interface Entry {
  handle: CkksHandle;
  /** The run (executeProgram call) that last used it. */
  run: number;
}

interface Level {
  /** Least recently used first: a hit moves its entry to the end. */
  entries: Map<string, Entry>;
  /** Most entries held at once: SEAL's memory pool keeps that many plaintexts of this size. */
  peak: number;
  bytes: number;
}

/**
 * An LRU per level under one byte budget. SEAL's memory pool never returns memory, and reuses a freed
 * plaintext's memory only for a plaintext of the same size (level): so the budget bounds what the pool
 * keeps for the cache (per level, the most plaintexts held at once), and an entry is only evicted for
 * one of its own level, which reuses its memory. A run names the plaintexts it will encode up front
 * (beginRun): those are never evicted during it. Without that, the next step's constants, which come
 * in the same order, would be evicted just before they are needed whenever a step is over budget.
 */
export class PlaintextCache {
  private readonly levels = new Map<number, Level>();
  private readonly held = new Set<CkksHandle>();
  private run = 0;
  /** Keys the current run encodes. */
  private needed = new Set<string>();
  private readonly counts = { hits: 0, misses: 0, bypassed: 0, prefetched: 0, evictions: 0, reservedBytes: 0 };

  constructor(
    private readonly ev: CkksEvaluator,
    readonly budgetBytes: number,
  ) {}

  /** Starts a run of `program`: the plaintexts it encodes are not evicted until the next run. */
  beginRun(program: FheProgram): void {
    this.run++;
    const keys = constantKeys(program);
    this.needed = new Set();
    for (const op of program.ops) {
      const key = op.kind === 'encode' ? keys.get(op.constant!) : undefined;
      if (key) this.needed.add(entryKey(key, op.result!.type.scale!, op.result!.type.level!));
    }
  }

  /** Whether the cache owns `h` (then whoever got it must not free it). */
  holds(h: CkksHandle): boolean {
    return this.held.has(h);
  }

  /** The encoded constant with content `key` at `level` and `scale`; `values` is called on a miss only. */
  encode(key: string, level: number, scale: number, values: () => Float64Array): CkksHandle {
    const k = entryKey(key, scale, level);
    const lv = this.level(level);
    const hit = lv.entries.get(k);
    if (hit) {
      this.counts.hits++;
      hit.run = this.run;
      lv.entries.delete(k);
      lv.entries.set(k, hit);
      return hit.handle;
    }
    this.counts.misses++;
    const handle = this.ev.encode(values(), level, scale);
    if (!this.makeRoom(lv)) {
      this.counts.bypassed++;
      return handle;
    }
    this.keep(lv, k, handle);
    return handle;
  }

  private level(level: number): Level {
    let lv = this.levels.get(level);
    if (!lv) this.levels.set(level, (lv = { entries: new Map(), peak: 0, bytes: plaintextBytes(this.ev.params, level) }));
    return lv;
  }

  /** A new entry, the most recently used, as used by the run under way. */
  private keep(lv: Level, key: string, handle: CkksHandle): void {
    lv.entries.set(key, { handle, run: this.run });
    lv.peak = Math.max(lv.peak, lv.entries.size);
    this.held.add(handle);
  }

  /**
   * Encodes ahead what a later run of `program` will ask this cache for, in the program's order, a few
   * at a time while the thread would only wait (on the key holder: `fill` runs until `answered()`). Only
   * into free room, never evicting, so the run under way is never short of room; an entry made ahead
   * counts as used by the run under way (kept until the next). The next step's constants are then hits
   * (the first decode step's weights, encoded during the prefill's waits).
   */
  prefetch(program: () => FheProgram): IdleWork {
    let todo: { key: string; level: number; scale: number; constant: string }[] | undefined;
    let prog: FheProgram | undefined;
    let next = 0;
    const done = () => todo !== undefined && next >= todo.length;
    return {
      pending: () => !done(),
      fill: (answered) => {
        if (!todo) {
          prog = program();
          const keys = constantKeys(prog);
          const seen = new Set<string>();
          todo = [];
          for (const op of prog.ops) {
            const content = op.kind === 'encode' ? keys.get(op.constant!) : undefined;
            if (!content) continue;
            const t = op.result!.type;
            const key = entryKey(content, t.scale!, t.level!);
            if (seen.has(key)) continue;
            seen.add(key);
            todo.push({ key, level: t.level!, scale: t.scale!, constant: op.constant! });
          }
        }
        while (!done() && !answered()) {
          const e = todo[next]!;
          const lv = this.level(e.level);
          if (lv.entries.has(e.key)) {
            next++;
            continue;
          }
          if (!this.freeRoom(lv)) {
            next = todo.length; // the budget is full: the rest would be encoded for nothing
            break;
          }
          const c = prog!.constants.get(e.constant)!;
          this.keep(lv, e.key, this.ev.encode(constantSlots(c.data, prog!.slots, c.name), e.level, e.scale));
          this.counts.prefetched++;
          next++;
        }
      },
    };
  }

  /**
   * Room for one more plaintext of this level: a slot the pool already holds for the level, or budget
   * for a new one, or the level's least recently used entry evicted. Entries this run has used are
   * kept (they may be live in it): the steps encode their constants in the same order, and a plain LRU
   * smaller than a step would evict exactly the entries the next step needs first. False when the new
   * plaintext must go uncached.
   */
  private makeRoom(lv: Level): boolean {
    if (this.freeRoom(lv)) return true;
    for (const [k, e] of lv.entries) {
      // Least recently used first: once one was used in this run, so were all the later ones.
      if (e.run === this.run) return false;
      if (this.needed.has(k)) continue;
      lv.entries.delete(k);
      this.held.delete(e.handle);
      this.ev.free(e.handle);
      this.counts.evictions++;
      return true;
    }
    return false;
  }

  /** Room without evicting: a slot the pool already holds for the level, or budget for a new one (reserved here). */
  private freeRoom(lv: Level): boolean {
    if (lv.entries.size < lv.peak) return true;
    if (this.counts.reservedBytes + lv.bytes > this.budgetBytes) return false;
    this.counts.reservedBytes += lv.bytes;
    return true;
  }

  get stats(): PlaintextCacheStats {
    let entries = 0;
    let bytes = 0;
    for (const lv of this.levels.values()) {
      entries += lv.entries.size;
      bytes += lv.entries.size * lv.bytes;
    }
    return { ...this.counts, entries, bytes, budgetBytes: this.budgetBytes };
  }

  /** Frees every cached plaintext (before the evaluator is disposed). */
  dispose(): void {
    for (const lv of this.levels.values()) for (const e of lv.entries.values()) this.ev.free(e.handle);
    this.levels.clear();
    this.held.clear();
  }
}
