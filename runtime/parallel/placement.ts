// Which worker runs which op of a program, and what each worker does in each stage: a list scheduler
// over the program's DAG, stage by stage (runtime/refresh/rounds.ts: a stage ends with a refresh round,
// which goes through the main thread). Each op goes to the worker where it would finish first, counting
// the cost of moving an operand that lives on another worker (serialize, post, load), so a chain stays
// on the worker that made it unless the other worker is idle long enough to pay for the move.
// Encodes are not placed: every worker that uses a constant encodes it itself (plaintexts never move).
// A refresh's fresh ciphertext comes back to the worker that sent its input. The placement depends on
// the program alone (deterministic), and every op computes the same bits on any worker, so results are
// the same bits as on one worker.

import type { FheOp, FheProgram } from '../../ir/fhe/types.js';
import { refreshStages } from '../refresh/rounds.js';

/**
 * Relative cost of each op kind at one level (a rotation ~ a key switch; what matters is the ratio of
 * key switches to the rest and to a move). From the shipped cost table's order of magnitude at N=8192.
 */
export const RELATIVE_OP_COST: Readonly<Record<string, number>> = {
  rotate: 1,
  relinearize: 1,
  mul: 0.15,
  mul_plain: 0.08,
  rescale: 0.1,
  mod_switch: 0.05,
  add: 0.02,
  sub: 0.02,
  negate: 0.02,
  add_plain: 0.02,
  input: 0.05,
  output: 0.05,
};

/** A worker's action within a stage. */
export type WorkerAction =
  /** Run op `op` of the program (encodes included: each worker encodes what it uses). */
  | { do: 'op'; op: number }
  /** Wait for value `value` from another worker. */
  | { do: 'recv'; value: string }
  /** Send value `value` to these workers. */
  | { do: 'send'; value: string; to: number[] }
  /** Hand value `value` to the main thread (a refresh input, sent in this stage's round). */
  | { do: 'export'; value: string }
  /** Free value `value` (its last use on this worker). */
  | { do: 'free'; value: string };

export interface Placement {
  workers: number;
  /** [worker][stage]: the worker's actions, in order. */
  actions: WorkerAction[][][];
  /** Refresh op index -> the worker holding its input (and then its result). */
  refreshHome: Map<number, number>;
  /** Values moved between workers, per run. */
  transfers: number;
  /** The scheduler's estimate: busiest worker's cost over the total (1/workers is perfect balance). */
  balance: number;
}

export interface PlacementOptions {
  /** Cost of moving one ciphertext between workers, per prime it holds, in rotation units (RELATIVE_OP_COST). */
  transferCost?: number;
}

/**
 * Per prime of the moved ciphertext, like the op costs. Measured on node-seal 7 at N=8192, chain
 * [60, 40, 40, 60], top level (CPU time, medians): a save, a structured clone and a checked load of a
 * ciphertext take 1.25 ms, a rotation 3.5 ms: about 0.35 of a rotation at the same level.
 */
export const DEFAULT_TRANSFER_COST = 0.35;

function opCost(op: FheOp): number {
  // Costs grow with the primes an op touches; level + 1 of the result (or operand) is a fair proxy.
  const t = op.result?.type ?? op.args[0]?.type;
  const primes = (t?.level ?? 0) + 1;
  return (RELATIVE_OP_COST[op.kind] ?? 0.02) * primes;
}

export function placeProgram(program: FheProgram, workers: number, options: PlacementOptions = {}): Placement {
  const transfer = options.transferCost ?? DEFAULT_TRANSFER_COST;
  const rounds = refreshStages(program);
  const ops = program.ops;
  const producer = new Map<string, number>();
  ops.forEach((op, i) => op.result && producer.set(op.result.name, i));
  const isPlain = (name: string) => ops[producer.get(name)!]?.kind === 'encode';
  /** A move costs in proportion to the primes (words) the ciphertext holds. */
  const moveCost = (name: string) => transfer * ((ops[producer.get(name)!]?.result?.type.level ?? 0) + 1);
  /** Where each ciphertext value is made, and when it is ready there (in cost units). */
  const home = new Map<string, number>();
  const ready = new Map<string, number>();
  /** Where a value has been sent (so it moves once per worker). */
  const copies = new Map<string, Map<number, number>>();
  const free = new Array<number>(workers).fill(0);
  const busy = new Array<number>(workers).fill(0);
  const refreshHome = new Map<number, number>();
  let transfers = 0;
  // Assignment per op, then the per-worker action lists are written from it.
  const assigned = new Map<number, number>();
  const availableOn = (name: string, w: number): number => {
    if (home.get(name) === w) return ready.get(name)!;
    return copies.get(name)?.get(w) ?? ready.get(name)! + moveCost(name);
  };
  rounds.stages.forEach((stage) => {
    for (const i of stage.ops) {
      const op = ops[i]!;
      if (op.kind === 'encode') continue;
      const cts = [...new Set(op.args.map((a) => a.name).filter((n) => !isPlain(n)))];
      let best = 0;
      let bestFinish = Infinity;
      for (let w = 0; w < workers; w++) {
        const start = Math.max(free[w]!, ...cts.map((n) => availableOn(n, w)));
        const finish = start + opCost(op);
        // Ties go to the worker that already holds the first operand (no move), then the lowest index.
        const holdsFirst = cts.length > 0 && home.get(cts[0]!) === w;
        if (finish < bestFinish - 1e-12 || (Math.abs(finish - bestFinish) <= 1e-12 && holdsFirst)) {
          best = w;
          bestFinish = finish;
        }
      }
      for (const n of cts) {
        if (home.get(n) === best || copies.get(n)?.has(best)) continue;
        let c = copies.get(n);
        if (!c) copies.set(n, (c = new Map()));
        c.set(best, ready.get(n)! + moveCost(n));
        transfers++;
      }
      assigned.set(i, best);
      free[best] = bestFinish;
      busy[best]! += opCost(op);
      if (op.result) {
        home.set(op.result.name, best);
        ready.set(op.result.name, bestFinish);
      }
    }
    // The round: every worker waits for it; fresh ciphertexts return to their input's worker.
    const barrier = Math.max(...free);
    free.fill(barrier);
    for (const i of stage.refreshes) {
      const op = ops[i]!;
      const w = home.get(op.args[0]!.name)!;
      refreshHome.set(i, w);
      home.set(op.result!.name, w);
      ready.set(op.result!.name, barrier);
    }
  });
  const total = busy.reduce((s, x) => s + x, 0);
  return { workers, actions: writeActions(program, workers, assigned, refreshHome), refreshHome, transfers, balance: total > 0 ? Math.max(...busy) / total : 1 / workers };
}

/** Each worker's actions per stage: its ops in stage order, with receives, sends, exports and frees. */
function writeActions(program: FheProgram, workers: number, assigned: Map<number, number>, refreshHome: Map<number, number>): WorkerAction[][][] {
  const ops = program.ops;
  const stages = refreshStages(program).stages;
  const producer = new Map<string, number>();
  ops.forEach((op, i) => op.result && producer.set(op.result.name, i));
  const actions: WorkerAction[][][] = Array.from({ length: workers }, () => stages.map(() => []));
  /** Per worker: values it holds (made, received or encoded), so each arrives once. */
  const held = Array.from({ length: workers }, () => new Set<string>());
  /** Per value: its send, placed right after the producer; receivers are added as consumers are met. */
  const sendAction = new Map<string, { do: 'send'; value: string; to: number[] }>();
  stages.forEach((stage, s) => {
    for (const i of stage.ops) {
      const op = ops[i]!;
      if (op.kind === 'encode') continue;
      const w = assigned.get(i)!;
      for (const a of op.args) {
        if (held[w]!.has(a.name)) continue;
        const p = producer.get(a.name)!;
        if (ops[p]!.kind === 'encode') {
          actions[w]![s]!.push({ do: 'op', op: p });
        } else {
          sendAction.get(a.name)!.to.push(w);
          actions[w]![s]!.push({ do: 'recv', value: a.name });
        }
        held[w]!.add(a.name);
      }
      actions[w]![s]!.push({ do: 'op', op: i });
      if (op.result) {
        held[w]!.add(op.result.name);
        const send = { do: 'send' as const, value: op.result.name, to: [] as number[] };
        sendAction.set(op.result.name, send);
        actions[w]![s]!.push(send);
      }
    }
    for (const i of stage.refreshes) {
      const x = ops[i]!.args[0]!.name;
      const w = refreshHome.get(i)!;
      actions[w]![s]!.push({ do: 'export', value: x });
      const r = ops[i]!.result!.name;
      held[w]!.add(r);
      // The fresh value is loaded at the start of the next stage; later sends of it go from there.
      const send = { do: 'send' as const, value: r, to: [] as number[] };
      sendAction.set(r, send);
      actions[w]![s + 1]!.unshift(send);
    }
  });
  // Drop empty sends, then free each value after its last action on each worker.
  for (let w = 0; w < workers; w++) {
    const flat: { s: number; a: WorkerAction }[] = [];
    actions[w]!.forEach((list, s) => list.forEach((a) => (a.do !== 'send' || a.to.length > 0) && flat.push({ s, a })));
    const last = new Map<string, number>();
    flat.forEach(({ a }, k) => {
      if (a.do === 'op') for (const x of ops[a.op]!.args) last.set(x.name, k);
      else if (a.do !== 'free') last.set(a.value, k);
      if (a.do === 'op' && ops[a.op]!.result) last.set(ops[a.op]!.result!.name, Math.max(last.get(ops[a.op]!.result!.name) ?? k, k));
    });
    const out: WorkerAction[][] = stages.map(() => []);
    flat.forEach(({ s, a }, k) => {
      out[s]!.push(a);
      const touched = a.do === 'op' ? [...ops[a.op]!.args.map((x) => x.name), ...(ops[a.op]!.result ? [ops[a.op]!.result!.name] : [])] : [a.value];
      for (const v of new Set(touched)) if (last.get(v) === k) out[s]!.push({ do: 'free', value: v });
    });
    actions[w] = out;
  }
  return actions;
}
