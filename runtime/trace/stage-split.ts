// Where a traced step's time went between refresh rounds. The runtime executes a program stage by stage
// (runtime/refresh/rounds.ts): a stage's ops that its round waits on run one after another before the
// round can be sent; the others can run while the key holder answers; then the round itself. Summing a
// run trace's measured op times (run-trace.ts) that way says whether a step is bound by the chain of
// rounds and their inputs or by work that could overlap, which the op totals alone do not tell.

import type { FheProgram } from '../../ir/fhe/types.js';
import { refreshStages, roundInputs } from '../refresh/rounds.js';

export interface StageSplit {
  /** Ops some round waits on (its inputs within their stage, run before it is sent). */
  waitedMs: number;
  /** Ops no round waits on (the last stage's included). */
  otherMs: number;
  /** The refresh rounds (the runtime counts a round's time on its refresh ops). */
  roundsMs: number;
  rounds: number;
  /** Rounds by how many ciphertexts they carry: count and total time. */
  bySize: { ciphertexts: number; rounds: number; ms: number }[];
  /** The stages whose waited-on ops took longest, longest first (at most `top`), with those ops (program indices). */
  heaviest: { stage: number; waitedMs: number; ops: number; refreshes: number; inputs: number[] }[];
}

/** The split of one traced step: `opMs` holds the measured time of each of the program's ops, in program order. */
export function splitByStages(program: FheProgram, opMs: readonly number[], top = 8): StageSplit {
  if (opMs.length !== program.ops.length) throw new RangeError(`a trace of ${opMs.length} op times for a program of ${program.ops.length} ops`);
  const { stages } = refreshStages(program);
  const out: StageSplit = { waitedMs: 0, otherMs: 0, roundsMs: 0, rounds: 0, bySize: [], heaviest: [] };
  const sizes = new Map<number, { ciphertexts: number; rounds: number; ms: number }>();
  const heavy: StageSplit['heaviest'] = [];
  stages.forEach((stage, s) => {
    const waited = roundInputs(program, stage);
    let w = 0;
    for (const i of stage.ops) {
      if (waited.has(i)) w += opMs[i]!;
      else out.otherMs += opMs[i]!;
    }
    out.waitedMs += w;
    if (stage.refreshes.length === 0) return;
    const ms = stage.refreshes.reduce((a, i) => a + opMs[i]!, 0);
    out.roundsMs += ms;
    out.rounds++;
    const k = stage.refreshes.length;
    const row = sizes.get(k) ?? { ciphertexts: k, rounds: 0, ms: 0 };
    row.rounds++;
    row.ms += ms;
    sizes.set(k, row);
    heavy.push({ stage: s, waitedMs: w, ops: waited.size, refreshes: k, inputs: [...waited] });
  });
  out.bySize = [...sizes.values()].sort((a, b) => a.ciphertexts - b.ciphertexts);
  out.heaviest = heavy.sort((a, b) => b.waitedMs - a.waitedMs).slice(0, top);
  return out;
}

/** One line: the three shares, and the rounds by size. */
export function formatStageSplit(split: StageSplit): string {
  const s = (ms: number) => (ms / 1000).toFixed(2);
  const count = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(1));
  const sizes = split.bySize.map((b) => `${count(b.rounds)} x ${b.ciphertexts} (${(b.ms / b.rounds).toFixed(1)} ms each)`).join(', ');
  return `ops a round waits on ${s(split.waitedMs)} s, other ops ${s(split.otherMs)} s, ${count(split.rounds)} refresh rounds ${s(split.roundsMs)} s (rounds x ciphertexts: ${sizes})`;
}

/** The mean of several steps' splits (a generation's decode steps): times and round counts per step, heaviest stages dropped. */
export function meanSplit(splits: readonly StageSplit[]): StageSplit {
  const n = Math.max(1, splits.length);
  const sizes = new Map<number, { ciphertexts: number; rounds: number; ms: number }>();
  for (const sp of splits) {
    for (const b of sp.bySize) {
      const row = sizes.get(b.ciphertexts) ?? { ciphertexts: b.ciphertexts, rounds: 0, ms: 0 };
      row.rounds += b.rounds / n;
      row.ms += b.ms / n;
      sizes.set(b.ciphertexts, row);
    }
  }
  const mean = (f: (sp: StageSplit) => number) => splits.reduce((a, sp) => a + f(sp), 0) / n;
  return {
    waitedMs: mean((sp) => sp.waitedMs),
    otherMs: mean((sp) => sp.otherMs),
    roundsMs: mean((sp) => sp.roundsMs),
    rounds: mean((sp) => sp.rounds),
    bySize: [...sizes.values()].sort((a, b) => a.ciphertexts - b.ciphertexts),
    heaviest: [],
  };
}

/**
 * The mean split of a generation's decode steps (undefined without any): `steps[i]` is step i's shape,
 * `traced[i]` its trace, `program(i)` the program it ran. One evaluator thread only: with workers the
 * traced op times overlap, so their sums say nothing of the chain (callers check).
 */
export function decodeStepsSplit(steps: readonly { shape: { kind: string } }[], traced: readonly ({ opMs: readonly number[] } | undefined)[], program: (i: number) => FheProgram): StageSplit | undefined {
  const splits = steps.flatMap((st, i) => (st.shape.kind === 'decode' && traced[i] ? [splitByStages(program(i), traced[i]!.opMs)] : []));
  return splits.length > 0 ? meanSplit(splits) : undefined;
}
