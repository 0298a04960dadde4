// One evaluation worker (a node worker thread): its own node-seal instance, evaluation keys (public
// material only: the secret key never reaches a worker) and plaintext cache. It runs its share of each
// stage of a program (placement.ts), trades ciphertexts with the other workers over direct message
// ports (serialized bytes: SEAL objects cannot cross threads), hands refresh inputs and outputs to the
// main thread, and reports per-op times. The main thread drives it with pool.ts's messages.

import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { weightCache } from '../../ir/weights/cache.js';
import { FhecError } from '../../ir/errors.js';
import type { FheProgram, FheType } from '../../ir/fhe/types.js';
import type { CkksParameters } from '../../ir/ckks/params.js';
import type { CkksEvaluator, CkksHandle, EvaluationKeys } from '../backend.js';
import { constantEncoder, runOp, withOpContext } from '../ckks/op-semantics.js';
import { PlaintextCache } from '../ckks/plaintext-cache.js';
import { sealBackend } from '../seal/backend.js';
import type { WorkerAction } from './placement.js';
import type { MainToWorker, PeerMessage, StageDone, StageMasking, WorkerToMain } from './protocol.js';
import { maskForRefresh, unmaskRefreshed, type PendingRefresh } from '../refresh/refresher.js';
import { MaskStock, type RefreshShape } from '../refresh/mask-stock.js';
import { redeclareForFactors } from '../refresh/redeclare.js';
import { applySlotMap } from '../ckks/slot-map.js';

const port = parentPort;
const budget = (workerData as { weightCacheBytes?: number } | undefined)?.weightCacheBytes;
if (budget !== undefined) weightCache.setBudget(budget);
if (!port) throw new Error('runtime/parallel/worker.ts runs as a worker thread');

let ev: CkksEvaluator | undefined;
let cache: PlaintextCache | undefined;
let peers: (MessagePort | undefined)[] = [];
const programs = new Map<number, { program: FheProgram; actions: WorkerAction[][] }>();

/** Values other workers sent, by run and name; a receive waits until its value is there. */
const mailbox = new Map<string, Uint8Array>();
const waiting = new Map<string, (b: Uint8Array) => void>();
const key = (run: number, name: string) => `${run}:${name}`;

function deliver(m: PeerMessage): void {
  const k = key(m.run, m.value);
  const w = waiting.get(k);
  if (w) {
    waiting.delete(k);
    w(m.bytes);
  } else mailbox.set(k, m.bytes);
}

function receive(run: number, name: string): Promise<Uint8Array> {
  const k = key(run, name);
  const b = mailbox.get(k);
  if (b) {
    mailbox.delete(k);
    return Promise.resolve(b);
  }
  return new Promise((resolve) => waiting.set(k, resolve));
}

/** A run in progress: its live values and the encoder of its program. */
interface Run {
  id: number;
  program: FheProgram;
  actions: WorkerAction[][];
  live: Map<string, CkksHandle>;
  encode: ReturnType<typeof constantEncoder>;
  /** Refresh inputs masked here, by value, until their fresh ciphertexts come back. */
  pending: Map<string, PendingRefresh>;
  /** Each value's type in the program (computed when first needed). */
  types?: Map<string, FheType>;
}
let current: Run | undefined;
/** Refresh masks made while this worker waits for the key holder, used by the next stage's exports. */
const masks = new MaskStock();
/** Masks of carries (refreshes outside a program) until their replies come, by carry id. */
const carries = new Map<number, PendingRefresh[]>();

function post(m: WorkerToMain): void {
  port!.postMessage(m);
}

function freeValue(run: Run, name: string): void {
  const h = run.live.get(name);
  if (!h) return;
  run.live.delete(name);
  if (!cache?.holds(h)) ev!.free(h);
}

/** The masks of the values a stage hands to the key holder (this worker's), made ahead (mask-stock.ts). */
function prepareNextMasks(run: Run, stage: number, masking: StageMasking): void {
  const exports = (run.actions[stage] ?? []).filter((a) => a.do === 'export').map((a) => (a as { value: string }).value);
  if (exports.length === 0 || !ev) return;
  run.types ??= new Map(run.program.ops.filter((op) => op.result).map((op) => [op.result!.name, op.result!.type]));
  const points = new Map(masking.points.map(([value, bound, scale, factor]) => [value, { bound, scale, factor }]));
  const shapes = exports.flatMap((value): RefreshShape[] => {
    const t = run.types!.get(value);
    const p = points.get(value);
    return t?.level !== undefined && t.scale !== undefined && p ? [{ point: value, level: t.level, scale: t.scale / p.factor, bound: p.bound, toLevel: masking.level, toScale: p.scale, size: t.kind === 'ct' ? t.size : 2 }] : [];
  });
  masks.prepare(ev, shapes, masking);
}

async function runStage(run: Run, m: Extract<MainToWorker, { kind: 'stage' }>): Promise<StageDone> {
  const e = ev!;
  const { stage, fresh, masking } = m;
  const inputs = new Map(m.inputs);
  const done: StageDone = { kind: 'stage-done', run: run.id, stage, outputs: [], exports: [], masked: [], opMs: [], moved: { count: 0, bytes: 0, ms: 0 }, waitMs: 0 };
  for (const [name, bytes] of fresh) run.live.set(name, e.loadCiphertext(bytes));
  // The stage's fresh ciphertexts unmasked together (the backend pairs their transforms).
  const kept = m.freshMasked.map(([, input]) => {
    const p = run.pending.get(input);
    if (!p) throw new Error(`internal: no mask kept for %${input}`);
    run.pending.delete(input);
    return p;
  });
  const unmasked = unmaskRefreshed(e, kept, m.freshMasked.map(([, , bytes]) => bytes));
  m.freshMasked.forEach(([name], i) => run.live.set(name, unmasked[i]!));
  const points = new Map((masking?.points ?? []).map(([value, bound, scale, factor]) => [value, { bound, scale, factor }]));
  const get = (name: string): CkksHandle => {
    const h = run.live.get(name);
    if (!h) throw new Error(`internal: %${name} is not live on this worker`);
    return h;
  };
  const outputs = new Map<string, Uint8Array>();
  const actions = run.actions[stage] ?? [];
  for (let at = 0; at < actions.length; at++) {
    const a = actions[at]!;
    switch (a.do) {
      case 'op': {
        const op = run.program.ops[a.op]!;
        const t0 = performance.now();
        const result = withOpContext(op, () => runOp(op, e, inputs, get, run.encode, outputs));
        done.opMs.push([a.op, performance.now() - t0]);
        if (op.result && result) run.live.set(op.result.name, result);
        break;
      }
      case 'recv': {
        const t0 = performance.now();
        const bytes = await receive(run.id, a.value);
        const t1 = performance.now();
        run.live.set(a.value, e.loadCiphertext(bytes));
        done.waitMs += t1 - t0;
        done.moved.ms += performance.now() - t1;
        break;
      }
      case 'send': {
        const t0 = performance.now();
        const bytes = e.saveCiphertext(get(a.value));
        for (const w of a.to) peers[w]!.postMessage({ run: run.id, value: a.value, bytes } satisfies PeerMessage);
        done.moved.count += a.to.length;
        done.moved.bytes += a.to.length * bytes.length;
        done.moved.ms += performance.now() - t0;
        break;
      }
      case 'export': {
        if (!masking) {
          done.exports.push([a.value, e.saveCiphertext(get(a.value))]);
          break;
        }
        // This and the exports right after it, masked together here, in parallel with the other
        // workers; each mask stays here until the reply.
        const values: string[] = [a.value];
        while (actions[at + 1]?.do === 'export') values.push((actions[++at] as { value: string }).value);
        const seen = new Map<string, { level: number; hidingBits: number }>();
        const exported = values.map((value) => {
          const point = points.get(value);
          if (!point) throw new Error(`internal: no refresh point for exported %${value}`);
          return { point, value };
        });
        // A refresh with a factor masks a copy declared at its masked scale, freed once masked.
        const redeclared = redeclareForFactors(e, exported.map(({ value, point }) => ({ ct: get(value), factor: point.factor })));
        const items = exported.map(({ point, value }, i) => ({ ct: redeclared.cts[i]!, scale: point.scale, level: masking.level, bound: point.bound, point: value }));
        try {
          const { requestItems, pending } = maskForRefresh(e, items, masking, (it, level, plan) => seen.set(it.point, { level, hidingBits: plan.hidingBitsPerCiphertext }), masks);
          items.forEach((it, i) => {
            run.pending.set(it.point, pending[i]!);
            const s = seen.get(it.point)!;
            done.masked.push({ value: it.point, request: requestItems[i]!, level: s.level, scale: e.scaleOf(it.ct), hidingBits: s.hidingBits });
          });
        } finally {
          redeclared.free();
        }
        break;
      }
      case 'free':
        freeValue(run, a.value);
        break;
    }
  }
  done.outputs = [...outputs];
  return done;
}

async function handle(m: MainToWorker): Promise<void> {
  switch (m.kind) {
    case 'init': {
      ev = await sealBackend.createEvaluator(m.params as CkksParameters, m.keys as EvaluationKeys);
      if (m.plaintextBudget > 0) cache = new PlaintextCache(ev, m.plaintextBudget);
      peers = m.peers;
      peers.forEach((p) => p?.on('message', deliver));
      post({ kind: 'ready' });
      return;
    }
    case 'program':
      programs.set(m.id, { program: m.program, actions: m.actions });
      // Only the latest few programs are kept (a generation loads one per step).
      for (const id of programs.keys()) if (programs.size > 4 && id !== m.id) programs.delete(id);
      return;
    case 'stage': {
      if (!current || current.id !== m.run) {
        const p = programs.get(m.program);
        if (!p) throw new Error(`internal: program ${m.program} was not sent to this worker`);
        current = { id: m.run, program: p.program, actions: p.actions, live: new Map(), encode: constantEncoder(p.program, ev!, m.cachePlaintexts === false ? undefined : cache), pending: new Map() };
      }
      post(await runStage(current, m));
      // Idle until the main thread's key holder has answered this round: make the masks the next stage's
      // refresh inputs will need (their shapes are the program's), off the critical path.
      if (m.nextMasking) prepareNextMasks(current, m.stage + 1, m.nextMasking);
      return;
    }
    case 'end': {
      if (current?.id === m.run) {
        for (const name of [...current.live.keys()]) freeValue(current, name);
        current = undefined;
      }
      for (const k of [...mailbox.keys()]) if (k.startsWith(`${m.run}:`)) mailbox.delete(k);
      post({ kind: 'ended', run: m.run, plaintexts: cache ? cache.stats : undefined, masks: { ...masks.stats } });
      return;
    }
    case 'carry-mask': {
      const e = ev!;
      const loaded: CkksHandle[] = [];
      try {
        const items = m.items.map((it) => {
          const ct = e.loadCiphertext(it.bytes);
          loaded.push(ct);
          const moved = it.map ? applySlotMap(e, ct, it.map) : ct;
          if (moved !== ct) loaded.push(moved);
          return { ct: moved, scale: it.scale, level: it.level, bound: it.bound, point: it.point };
        });
        const seen: { level: number; hidingBits: number }[] = [];
        const { requestItems, pending } = maskForRefresh(e, items, m.hiding, (_, level, plan) => seen.push({ level, hidingBits: plan.hidingBitsPerCiphertext }));
        carries.set(m.carry, pending);
        post({
          kind: 'carry-masked',
          carry: m.carry,
          masked: items.map((it, i) => ({ value: it.point, request: requestItems[i]!, level: seen[i]!.level, scale: e.scaleOf(it.ct), hidingBits: seen[i]!.hidingBits })),
        });
      } finally {
        for (const h of loaded) e.free(h);
      }
      return;
    }
    case 'carry-unmask': {
      const e = ev!;
      const pending = carries.get(m.carry);
      if (!pending) throw new Error(`internal: no masks kept for carry ${m.carry}`);
      carries.delete(m.carry);
      const fresh = unmaskRefreshed(e, pending, m.replies);
      post({
        kind: 'carry-fresh',
        carry: m.carry,
        fresh: fresh.map((h) => {
          const bytes = e.saveCiphertext(h);
          e.free(h);
          return bytes;
        }),
      });
      return;
    }
    case 'close':
      cache?.dispose();
      ev?.dispose();
      peers.forEach((p) => p?.close());
      port!.close();
      return;
  }
}

// Messages are handled one at a time, in order.
let queue: Promise<void> = Promise.resolve();
port.on('message', (m: MainToWorker) => {
  queue = queue.then(() =>
    handle(m).catch((e: unknown) => {
      const where = e instanceof FhecError ? e.where : {};
      post({ kind: 'error', message: e instanceof Error ? e.message : String(e), where, fhec: e instanceof FhecError });
    }),
  );
});
