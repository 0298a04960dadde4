// The level model both refresh placements work on, and the rewrite that inserts the refreshes.
//
// Every ciphertext value v of an unmanaged program is a node with weight w(v) = 1 for mul and
// mul_plain (one rescale, one level) and 0 otherwise. Given a set S of refreshed values,
//   d(v) = w(v) + max over ciphertext operands a of (a in S ? 0 : d(a)),   d(input) = its initial depth,
// and the placement is feasible when d(v) <= L (the chain's top level) for every v: inputs start at
// the top level, a refresh restores it, and no value goes below level 0. This is the depth
// passes/fhe/depth.ts computes, and what passes/fhe/manage.ts spends: it puts inputs at level
// D = max d <= L and every value v at a level >= D - d(v) (by induction: a product sits one level
// below its lower operand, an addition at the lower of its operands, a refresh at L >= D).
// A refreshed value is refreshed once for all its consumers, so the cost of S is |S|.
//
// Per-value floors: a value may have to sit higher than level 0 (a refresh mask needs a modulus wide
// enough for the value's bound, a KV-cache carry one level more: compiler/model-parameters.ts). The
// floor f(v) tightens v's own constraint to d(v) <= limit(v) = L - f(v), whether or not v is refreshed
// (so the dominance arguments below and the placements' lookahead stay exact for this model).

import { FhecError } from '../../../ir/errors.js';
import { isMultiplication, type FheOp, type FheOpKind, type FheProgram, type FheValue } from '../../../ir/fhe/types.js';
import { verifyFhe } from '../../../ir/fhe/verify.js';

export interface LevelGraph {
  /** Value names, in program (topological) order. */
  names: string[];
  kinds: FheOpKind[];
  /** 1 for a multiplication, else 0. */
  weight: number[];
  /** Distinct ciphertext operands (node indices, all earlier). */
  args: number[][];
  /** Distinct consuming nodes (outputs are not nodes). */
  consumers: number[][];
  /** Initial depth of inputs (levels already used), -1 for other nodes. */
  initial: number[];
  /** L: levels between refreshes (the top level of the chain). */
  levels: number;
  /** Largest depth each node may have: L minus its floor (L when the caller gives no floors). */
  limit: number[];
}

/** Programs already verified: a parameter search places refreshes in one program for many chains. */
const verified = new WeakSet<FheProgram>();

const ZERO_WEIGHT_UNARY = new Set<FheOpKind>(['negate', 'rotate', 'add_plain']);

/**
 * The level model of an unmanaged program (an input declared at level l starts at depth levels - l);
 * `floor` gives the lowest level a value may sit at (default 0).
 */
export function levelGraph(program: FheProgram, levels: number, floor?: (name: string) => number): LevelGraph {
  if (program.chain) throw new FhecError('refresh placement works on unmanaged programs: place refreshes before scale management');
  if (!Number.isInteger(levels) || levels < 0) throw new FhecError(`level budget ${levels} is not a non-negative integer`);
  if (!verified.has(program)) {
    verifyFhe(program);
    verified.add(program);
  }
  const index = new Map<string, number>();
  const g: LevelGraph = { names: [], kinds: [], weight: [], args: [], consumers: [], initial: [], levels, limit: [] };
  for (const op of program.ops) {
    if (!op.result || op.result.type.kind !== 'ct') continue;
    if (op.kind === 'rescale' || op.kind === 'mod_switch' || op.kind === 'relinearize') {
      throw new FhecError(`${op.kind} in an unmanaged program: the scale management pass places these itself`);
    }
    const i = g.names.length;
    index.set(op.result.name, i);
    g.names.push(op.result.name);
    const f = floor ? floor(op.result.name) : 0;
    if (!(f >= 0)) throw new FhecError(`floor ${f} of %${op.result.name} is not a level`);
    g.limit.push(levels - f);
    g.kinds.push(op.kind);
    g.weight.push(isMultiplication(op.kind) ? 1 : 0);
    const args = [...new Set(op.args.filter((a) => a.type.kind === 'ct').map((a) => index.get(a.name)!))];
    g.args.push(args);
    g.consumers.push([]);
    for (const a of args) g.consumers[a]!.push(i);
    let initial = -1;
    if (op.kind === 'input') {
      const l = op.result.type.level;
      initial = l === undefined ? 0 : levels - l;
      if (initial < 0) throw new FhecError(`input "${op.tensor}" is declared at level ${l}, above the top level ${levels}`);
    }
    if (op.kind === 'refresh') initial = 0;
    g.initial.push(initial);
  }
  return g;
}

/**
 * Values worth considering for a refresh; the others are dominated (swapping them for the value named
 * below keeps the placement feasible at no more cost), so the optimum is kept:
 * - a value with no consumer, an existing refresh, or any value whose depth is its initial 0;
 * - (B) a value v read by exactly one node u, of weight 0, whose limit is no lower than v's: refresh u
 *   instead (u's consumers see depth 0 either way, nothing else reads v, and u's own depth stays within
 *   its limit: v adds d(v) <= limit(v) <= limit(u) to it). With per-value floors u's limit can be the lower one (a sum read by a constant addition
 *   whose bound needs a higher refresh level): then only refreshing v keeps u within its limit, and
 *   excluding v lost every feasible state of the search (the greedy placement it carries along then
 *   stood in, with its extra refreshes);
 * - (A) a zero-weight unary op (rotate, negate, add_plain) of a value a that has other consumers too:
 *   refresh a instead (the op then has depth 0, and a's other consumers only gain).
 * (A) asks a to have two or more consumers, so (B) never excludes a: the swaps cannot go in a circle.
 */
export function refreshCandidates(g: LevelGraph): boolean[] {
  return g.names.map((_, v) => {
    if (g.consumers[v]!.length === 0 || g.kinds[v] === 'refresh') return false;
    if (g.kinds[v] === 'input') return g.initial[v]! > 0;
    const only = g.consumers[v]!.length === 1 ? g.consumers[v]![0]! : -1;
    if (only >= 0 && g.weight[only] === 0 && g.limit[only]! >= g.limit[v]!) return false;
    const a = g.args[v]!;
    return !(a.length === 1 && ZERO_WEIGHT_UNARY.has(g.kinds[v]!) && g.consumers[a[0]!]!.length >= 2);
  });
}

/** d(v) for every node under the refreshed set; the largest is what the chain must hold. */
export function depthsWith(g: LevelGraph, refreshed: ReadonlySet<number>): number[] {
  const d: number[] = [];
  for (let v = 0; v < g.names.length; v++) {
    if (g.initial[v]! >= 0) {
      d.push(g.initial[v]!);
      continue;
    }
    let m = 0;
    for (const a of g.args[v]!) m = Math.max(m, refreshed.has(a) ? 0 : d[a]!);
    d.push(g.weight[v]! + m);
  }
  return d;
}

export function isFeasible(g: LevelGraph, refreshed: ReadonlySet<number>): boolean {
  return depthsWith(g, refreshed).every((x, v) => x <= g.limit[v]!);
}

/** The program with `refresh` inserted after each named value, every later use reading the refreshed one. */
function insertRefreshes(program: FheProgram, refreshed: Iterable<string>): FheProgram {
  const set = new Set(refreshed);
  const names = new Set<string>();
  for (const op of program.ops) if (op.result) names.add(op.result.name);
  for (const n of set) if (!names.has(n)) throw new FhecError(`cannot refresh %${n}: no such value`);
  const renamed = new Map<string, FheValue>();
  const ops: FheOp[] = [];
  for (const op of program.ops) {
    const copy: FheOp = { ...op, args: op.args.map((a) => renamed.get(a.name) ?? a) };
    ops.push(copy);
    const r = op.result;
    if (r && set.has(r.name)) {
      if (r.type.kind !== 'ct') throw new FhecError(`cannot refresh %${r.name}: not a ciphertext`);
      let name = `${r.name}.r`;
      for (let i = 1; names.has(name); i++) name = `${r.name}.r${i}`;
      names.add(name);
      const fresh: FheValue = { name, type: { kind: 'ct', size: 2 } };
      ops.push({ kind: 'refresh', args: [r], result: fresh });
      renamed.set(r.name, fresh);
    }
  }
  // Not verified here: the input was, each refresh reads a defined ciphertext and its new name is
  // unique, and scale management verifies what it builds from this.
  return { ...program, constants: new Map(program.constants), ops };
}

export interface RefreshPlacement {
  /** The program with the refreshes inserted (still unmanaged). */
  program: FheProgram;
  /** Names of the refreshed values, in program order. */
  refreshed: string[];
  /** Levels the deepest stretch between refreshes uses (<= the budget). */
  depth: number;
}

export function placementResult(program: FheProgram, g: LevelGraph, refreshed: ReadonlySet<number>): RefreshPlacement {
  const d = depthsWith(g, refreshed);
  const depth = d.reduce((m, x) => Math.max(m, x), 0);
  const over = d.findIndex((x, v) => x > g.limit[v]!);
  if (over >= 0) throw new Error(`internal: placement leaves %${g.names[over]} at depth ${d[over]} above its limit ${g.limit[over]}`);
  const names = [...refreshed].sort((a, b) => a - b).map((i) => g.names[i]!);
  return { program: insertRefreshes(program, names), refreshed: names, depth };
}
