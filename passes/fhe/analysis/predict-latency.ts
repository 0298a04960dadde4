// Predicted latency of a managed FHE program under a cost table: the sum over its ops of the measured
// cost of that op kind at that level (ir/ckks/cost-table.ts), counting a rotation once per key
// switch it takes, inputs as ciphertext loads and outputs as saves, and every refresh as a client round
// trip (mask, send, decrypt, encrypt afresh, send back, unmask) whose bytes cross the table's link; the
// link's round-trip time is paid once per refresh round (ir/fhe/refresh-rounds.ts: the refreshes of one
// round travel in one message).

import { FhecError } from '../../../ir/errors.js';
import type { FheOp, FheProgram } from '../../../ir/fhe/types.js';
import { refreshRounds } from '../../../ir/fhe/refresh-rounds.js';
import { opCost, refreshRoundTrip, type CostTable, type TimedOp } from '../../../ir/ckks/cost-table.js';

export interface LatencyOptions {
  /** The Galois key steps one rotation applies (several when composed); default one key switch. */
  rotationKeySteps?: (step: number) => number[];
  /**
   * Refreshes the program needs that are not refresh ops in it (a planner that only counts them):
   * each is costed as a round trip from level 0 to `extraRefreshLevel` (default: the chain's top).
   */
  extraRefreshes?: number;
  extraRefreshLevel?: number;
  /** Told each op's predicted cost (its index in the program), for per-kernel breakdowns. */
  onOp?: (index: number, kind: string, ms: number) => void;
}

export interface OpLatency {
  count: number;
  ms: number;
}

export interface LatencyPrediction {
  ringDegree: number;
  totalMs: number;
  /** By op kind (rotate counts rotations; its ms covers all their key switches). */
  byKind: Map<string, OpLatency>;
  refreshes: number;
  refreshMs: number;
  /** Bytes exchanged with the key holder for refreshes. */
  refreshBytes: number;
  /** Messages to the key holder: refresh rounds (one per counted-only refresh). */
  refreshRounds: number;
  /**
   * The longest chain of dependent ops, each priced as in totalMs (a refresh is its round trip plus the
   * link's round-trip time): the latency with as many evaluation threads as the program can use, so
   * totalMs / criticalPathMs bounds what threads can gain. Counted-only refreshes are not on it.
   */
  criticalPathMs: number;
}

function levelOf(op: FheOp): number {
  if (op.kind === 'encode' || op.kind === 'input') return op.result!.type.level!;
  return op.args[0]!.type.level!;
}

export function predictLatency(program: FheProgram, table: CostTable, options: LatencyOptions = {}): LatencyPrediction {
  const chain = program.chain;
  if (!chain) throw new FhecError('latency prediction needs a managed program (run scale management first)');
  const n = chain.ringDegree;
  const top = chain.primes.length - 1;
  const byKind = new Map<string, OpLatency>();
  let total = 0;
  let refreshes = 0;
  let refreshMs = 0;
  let refreshBytes = 0;
  let index = -1;
  // The cost of the op being priced, and when each value is ready along its longest chain of ops.
  let opMs = 0;
  const ready = new Map<string, number>();
  let criticalPathMs = 0;
  const add = (kind: string, ms: number) => {
    opMs += ms;
    if (index >= 0) options.onOp?.(index, kind, ms);
    const e = byKind.get(kind) ?? { count: 0, ms: 0 };
    e.count++;
    e.ms += ms;
    byKind.set(kind, e);
    total += ms;
  };
  for (const [i, op] of program.ops.entries()) {
    index = i;
    opMs = 0;
    const level = levelOf(op);
    switch (op.kind) {
      case 'input':
        add('input', opCost(table, 'load', n, level));
        break;
      case 'output':
        add('output', opCost(table, 'save', n, level));
        break;
      case 'rotate': {
        const parts = options.rotationKeySteps ? options.rotationKeySteps(op.step!).length : 1;
        add('rotate', parts * opCost(table, 'rotate', n, level));
        break;
      }
      case 'refresh': {
        const arg = op.args[0]!.type;
        const rt = refreshRoundTrip(table, n, level, op.result!.type.level!, top, arg.kind === 'ct' ? arg.size : 2);
        add('refresh', rt.totalMs);
        refreshes++;
        refreshMs += rt.totalMs;
        refreshBytes += rt.bytes;
        break;
      }
      default:
        add(op.kind, opCost(table, op.kind as TimedOp, n, level, top));
    }
    const start = op.args.reduce((t, a) => Math.max(t, ready.get(a.name) ?? 0), 0);
    const end = start + opMs + (op.kind === 'refresh' ? table.link.rttMs : 0);
    if (op.result) ready.set(op.result.name, end);
    criticalPathMs = Math.max(criticalPathMs, end);
  }
  index = -1;
  // One round-trip time per round of refreshes (a counted-only refresh is a round of its own).
  const extra = options.extraRefreshes ?? 0;
  const rounds = refreshRounds(program).count + extra;
  if (rounds > 0 && table.link.rttMs > 0) {
    const e = byKind.get('round trip') ?? { count: 0, ms: 0 };
    e.count += rounds;
    e.ms += rounds * table.link.rttMs;
    byKind.set('round trip', e);
    total += rounds * table.link.rttMs;
    refreshMs += rounds * table.link.rttMs;
  }
  if (extra > 0) {
    const rt = refreshRoundTrip(table, n, 0, options.extraRefreshLevel ?? top, top);
    for (let i = 0; i < extra; i++) add('refresh', rt.totalMs);
    refreshes += extra;
    refreshMs += extra * rt.totalMs;
    refreshBytes += extra * rt.bytes;
  }
  return { ringDegree: n, totalMs: total, byKind, refreshes, refreshMs, refreshBytes, refreshRounds: rounds, criticalPathMs };
}

/** One table row per op kind, most expensive first. */
export function formatLatency(p: LatencyPrediction): string {
  const lines = [`predicted latency at N=${p.ringDegree}: ${p.totalMs.toFixed(1)} ms`, '| op | count | ms | share |', '|---|---:|---:|---:|'];
  for (const [kind, e] of [...p.byKind].sort((a, b) => b[1].ms - a[1].ms)) {
    lines.push(`| ${kind} | ${e.count} | ${e.ms.toFixed(2)} | ${((100 * e.ms) / (p.totalMs || 1)).toFixed(1)}% |`);
  }
  if (p.refreshes) lines.push(`${p.refreshes} refreshes in ${p.refreshRounds} rounds: ${p.refreshMs.toFixed(1)} ms, ${(p.refreshBytes / 2 ** 20).toFixed(1)} MiB exchanged`);
  lines.push(`critical path ${p.criticalPathMs.toFixed(1)} ms: threads can make it at most ${(p.totalMs / (p.criticalPathMs || 1)).toFixed(2)}x as fast`);
  return lines.join('\n');
}
