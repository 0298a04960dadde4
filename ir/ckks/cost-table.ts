// The cost table: measured milliseconds per CKKS operation on one machine, per ring degree and level,
// ciphertext sizes and serialization costs per byte, and a model of the client round trip a refresh
// costs (mask, send, decrypt, encrypt afresh, send back, unmask). Written by `fhec calibrate-costs`
// (runtime/ckks/measure-costs.ts); ir/ckks/default-costs.json is one measured on the development
// machine. passes/fhe/predict-latency.ts and passes/fhe/parameter-search.ts read it.
//
// Levels: an op "at level l" works on l+1 data primes. Its cost depends on that count (and N), not on
// the chain it was measured with (each RNS prime is one 64-bit word whatever its bit size, and a key
// switch at level l touches l+1 digits and the special prime only), so a table measured with one chain
// serves every chain of the same N: levels between measured ones are interpolated, levels beyond them
// extrapolated with a least-squares fit a + b k + c k^2 in the prime count k (key switching is
// quadratic in k, the other ops linear).
//
// Exception: encode and encrypt. SEAL encodes (and encrypts) at the top of the chain and then drops
// primes, so their cost depends on the chain's top level, not on the level they end at. Their entries
// are keyed by the top level of the chain they were measured with (the measurement chain, and a short
// one), and opCost prices them at the program's chain top.

import * as fs from 'node:fs';
import { z } from 'zod';
import { FhecError } from '../errors.js';
import defaultCostsJson from './default-costs.json' with { type: 'json' };

/** Op kinds the table times (the FHE IR's kinds, plus client-side and serialization work). */
export const TIMED_OPS = [
  'encode', 'add', 'sub', 'negate', 'add_plain', 'mul_plain', 'mul', 'relinearize', 'rescale', 'mod_switch', 'rotate',
  // client side: encrypt = encode + encrypt + serialize; decrypt = load + decrypt + decode
  'encrypt', 'decrypt',
  // evaluator side: ciphertext to bytes and back
  'save', 'load',
] as const;
export type TimedOp = (typeof TIMED_OPS)[number];

/** Ops priced by the chain's top level (see the header). */
export const TOP_LEVEL_OPS: ReadonlySet<TimedOp> = new Set<TimedOp>(['encode', 'encrypt']);

const levelKey = z.string().regex(/^\d+$/, 'level keys must be non-negative integers');
const msByLevel = z.record(levelKey, z.number().nonnegative().finite());

const ringEntrySchema = z.object({
  ringDegree: z.number().int().refine((n) => n >= 1024 && (n & (n - 1)) === 0, 'ringDegree must be a power of two >= 1024'),
  /** The chain the measurements used (data primes, then the special prime). */
  bitSizes: z.array(z.number().int().min(17).max(60)).min(2),
  /** Milliseconds per op at each measured level (encode, encrypt: at each measured chain top). */
  ops: z.partialRecord(z.enum(TIMED_OPS), msByLevel),
  /** Serialized ciphertext bytes (size 2, no compression) at each measured level. */
  ciphertextBytes: msByLevel,
  /** Timed samples per op for this ring degree (median), if it differs from the provenance's. */
  reps: z.number().int().positive().optional(),
  /** Serialization cost per byte (least-squares fit of save/load times over the measured levels). */
  serialization: z.object({ saveMsPerByte: z.number().nonnegative().finite(), loadMsPerByte: z.number().nonnegative().finite() }),
});

export const costTableSchema = z.object({
  format: z.literal('fhec-cost-table'),
  version: z.literal(1),
  provenance: z.object({
    machine: z.string(),
    cpus: z.number().int().positive(),
    date: z.string(),
    nodeSeal: z.string(),
    node: z.string(),
    /** Median of this many timed runs per op (after one warm-up). */
    reps: z.number().int().positive(),
    quick: z.boolean(),
    loadAverage: z.array(z.number()).optional(),
    note: z.string().optional(),
  }),
  /** The link between evaluator and key holder for refresh round trips (assumed, not measured). */
  link: z.object({ rttMs: z.number().nonnegative().finite(), bytesPerMs: z.number().positive(), note: z.string().optional() }),
  ringDegrees: z.array(ringEntrySchema).min(1),
});

export type CostTable = z.infer<typeof costTableSchema>;
export type RingCosts = z.infer<typeof ringEntrySchema>;

/** Checks a parsed JSON value; errors name the field and say what is wrong. */
export function parseCostTable(value: unknown, file?: string): CostTable {
  const r = costTableSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = issue.path.length ? issue.path.join('.') : undefined;
    // A bad record key: say what is wrong with the key itself.
    const inner = issue.code === 'invalid_key' ? issue.issues[0]?.message : undefined;
    const message = inner ? `bad key '${String(issue.path[issue.path.length - 1])}': ${inner}` : issue.message;
    throw new FhecError(`not a valid cost table: ${message}`, { ...(file ? { file } : {}), ...(field ? { field } : {}) });
  }
  const seen = new Set<number>();
  for (const e of r.data.ringDegrees) {
    if (seen.has(e.ringDegree)) throw new FhecError(`ring degree ${e.ringDegree} appears twice`, { ...(file ? { file } : {}), field: 'ringDegrees' });
    seen.add(e.ringDegree);
    for (const op of ['rotate', 'mul', 'add'] as const) {
      if (!e.ops[op] || Object.keys(e.ops[op]!).length === 0) {
        throw new FhecError(`no timings for ${op} at N=${e.ringDegree}`, { ...(file ? { file } : {}), field: `ringDegrees.${e.ringDegree}.ops.${op}` });
      }
    }
  }
  return r.data;
}

export function loadCostTable(file: string): CostTable {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FhecError(code === 'ENOENT' ? 'cost table not found' : `cannot read cost table (${code})`, { file });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new FhecError(`cost table is not JSON: ${(e as Error).message}`, { file });
  }
  return parseCostTable(value, file);
}

/** The table shipped with fhec (measured on the development machine; see its provenance). */
export function defaultCostTable(): CostTable {
  return parseCostTable(defaultCostsJson, 'ir/ckks/default-costs.json');
}

export function ringCosts(table: CostTable, ringDegree: number): RingCosts {
  const e = table.ringDegrees.find((r) => r.ringDegree === ringDegree);
  if (!e) {
    throw new FhecError(`the cost table has no timings for N=${ringDegree} (it has ${table.ringDegrees.map((r) => r.ringDegree).join(', ')}); run fhec calibrate-costs`);
  }
  return e;
}

export function hasRingDegree(table: CostTable, ringDegree: number): boolean {
  return table.ringDegrees.some((r) => r.ringDegree === ringDegree);
}

/** Least squares of y on the given basis functions of x. */
function fit(points: [number, number][], basis: ((x: number) => number)[]): number[] {
  const m = basis.length;
  const a = Array.from({ length: m }, () => new Float64Array(m + 1));
  for (const [x, y] of points) {
    const f = basis.map((b) => b(x));
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < m; j++) a[i]![j]! += f[i]! * f[j]!;
      a[i]![m]! += f[i]! * y;
    }
  }
  // Gaussian elimination with partial pivoting.
  for (let c = 0; c < m; c++) {
    let p = c;
    for (let r = c + 1; r < m; r++) if (Math.abs(a[r]![c]!) > Math.abs(a[p]![c]!)) p = r;
    [a[c], a[p]] = [a[p]!, a[c]!];
    if (Math.abs(a[c]![c]!) < 1e-300) return new Array<number>(m).fill(0);
    for (let r = 0; r < m; r++) {
      if (r === c) continue;
      const f = a[r]![c]! / a[c]![c]!;
      for (let j = c; j <= m; j++) a[r]![j]! -= f * a[c]![j]!;
    }
  }
  return a.map((row, i) => row[m]! / row[i]!);
}

const QUADRATIC = new Set<string>(['relinearize', 'rotate']);

/** ms of `op` at `level` from measurements by level: exact, interpolated, or extrapolated (see header). */
export function valueAtLevel(byLevel: Record<string, number>, level: number, quadratic = false): number {
  const pts = Object.entries(byLevel)
    .map(([l, v]) => [Number(l), v] as [number, number])
    .sort((x, y) => x[0] - y[0]);
  if (pts.length === 0) return NaN;
  const exact = pts.find((p) => p[0] === level);
  if (exact) return exact[1];
  const lo = pts.filter((p) => p[0] < level).pop();
  const hi = pts.find((p) => p[0] > level);
  if (lo && hi) return lo[1] + ((hi[1] - lo[1]) * (level - lo[0])) / (hi[0] - lo[0]);
  // Extrapolation in the prime count k = level + 1.
  const k = level + 1;
  const shape = (x: number) => (quadratic ? x * (x + 1) : x);
  if (level < pts[0]![0]) {
    // Below the measurements: scale the lowest one by the op's growth in k.
    return (pts[0]![1] * shape(k)) / shape(pts[0]![0] + 1);
  }
  const byK = pts.map(([l, v]) => [l + 1, v] as [number, number]);
  const last = pts[pts.length - 1]!;
  let y: number;
  if (byK.length === 1) y = (last[1] * shape(k)) / shape(last[0] + 1);
  else if (byK.length === 2 || !quadratic) {
    const [a, b] = fit(byK, [() => 1, (x) => x]);
    y = a! + b! * k;
  } else {
    const [a, b, c] = fit(byK, [() => 1, (x) => x, (x) => x * x]);
    y = a! + b! * k + c! * k * k;
  }
  // Costs grow with k: never below the highest measurement.
  return Math.max(y, last[1]);
}

/**
 * Milliseconds of one `op` at `level` on ring degree N, in a chain whose top level is `chainTop`
 * (only encode and encrypt depend on it; default: `level`).
 */
export function opCost(table: CostTable, op: TimedOp, ringDegree: number, level: number, chainTop = level): number {
  // Predictions price every op of a program (millions on a large model): remembered per table.
  let memo = opCosts.get(table);
  if (!memo) opCosts.set(table, (memo = new Map()));
  const key = `${op} ${ringDegree} ${level} ${chainTop}`;
  let ms = memo.get(key);
  if (ms === undefined) memo.set(key, (ms = computeOpCost(table, op, ringDegree, level, chainTop)));
  return ms;
}

const opCosts = new WeakMap<CostTable, Map<string, number>>();

function computeOpCost(table: CostTable, op: TimedOp, ringDegree: number, level: number, chainTop: number): number {
  const e = ringCosts(table, ringDegree);
  if (TOP_LEVEL_OPS.has(op)) level = Math.max(level, chainTop);
  if (op === 'save' || op === 'load') {
    const perByte = op === 'save' ? e.serialization.saveMsPerByte : e.serialization.loadMsPerByte;
    return perByte * ciphertextBytes(table, ringDegree, level);
  }
  const m = e.ops[op];
  if (!m || Object.keys(m).length === 0) throw new FhecError(`the cost table has no timings for ${op} at N=${ringDegree}`);
  return valueAtLevel(m, level, QUADRATIC.has(op));
}

/** Bytes of a serialized size-2 ciphertext at `level`: 2 (l+1) N words of 8 bytes plus a header. */
export function ciphertextBytes(table: CostTable, ringDegree: number, level: number): number {
  const e = ringCosts(table, ringDegree);
  const m = e.ciphertextBytes[String(level)];
  if (m !== undefined) return m;
  // Exactly linear in the prime count; the header is what the measurements leave over.
  const pts = Object.entries(e.ciphertextBytes).map(([l, v]) => [Number(l), v] as [number, number]);
  const header = pts.length ? pts[0]![1] - 16 * ringDegree * (pts[0]![0] + 1) : 0;
  return header + 16 * ringDegree * (level + 1);
}

export interface RoundTrip {
  /**
   * Evaluator: the mask's residues into NTT form (an encode's transform at the level), added; the
   * re-randomizing public-key encryption of zero, made at the refresh's level (a chain whose top is
   * that level: runtime/seal/zero-encryptor.ts), added; serialize.
   */
  evaluatorMs: number;
  /**
   * Key holder: load, decrypt, the inverse transform to coefficients (an encode's transform at the
   * level), then the lifted polynomial's encryption at the new level (the table's encrypt, which
   * includes an encode's transform there), serialized.
   */
  clientMs: number;
  /**
   * Link: both ciphertexts' bytes. The round-trip time is paid once per refresh round (all refreshes
   * of a round travel in one message: ir/fhe/refresh-rounds.ts), see predict-latency.ts.
   */
  linkMs: number;
  /** Evaluator: load the fresh ciphertext, the mask's residues into NTT form at the new level, subtracted. */
  unmaskMs: number;
  bytes: number;
  totalMs: number;
}

/**
 * Cost of one client-aided refresh of a ciphertext from level `from` to level `to` (chain top `top`),
 * round-trip time not included: every step of the protocol (runtime/refresh/refresher.ts,
 * key-holder.ts), each priced by the table's measured op. Transforms at one level are priced as an
 * encode in a chain whose top is that level (an encode is the same transform plus the slot encoding).
 */
export function refreshRoundTrip(table: CostTable, ringDegree: number, from: number, to: number, top = to, size = 2): RoundTrip {
  const c = (op: TimedOp, l: number, chainTop = top) => opCost(table, op, ringDegree, l, chainTop);
  const transform = (l: number) => c('encode', l, l);
  // An unrelinearized product (size 3): the mask is a size-3 encryption with the product key (one more
  // transform and product: 4/3 of an encryption, runtime/seal/zero-encryptor.ts), and the request's
  // serialization, bytes and decryption grow by half.
  const third = size === 3 ? 1.5 : 1;
  const evaluatorMs = transform(from) + c('add_plain', from) + (size === 3 ? 4 / 3 : 1) * c('encrypt', from, from) + third * c('add', from) + third * c('save', from);
  const clientMs = third * c('load', from) + third * c('decrypt', from) + transform(from) + c('encrypt', to) + c('save', to);
  const bytes = third * ciphertextBytes(table, ringDegree, from) + ciphertextBytes(table, ringDegree, to);
  const linkMs = bytes / table.link.bytesPerMs;
  const unmaskMs = c('load', to) + transform(to) + c('add_plain', to);
  return { evaluatorMs, clientMs, linkMs, unmaskMs, bytes, totalMs: evaluatorMs + clientMs + linkMs + unmaskMs };
}

export type Link = CostTable['link'];

/**
 * Evaluator and key holder in one process (what `fhec generate` runs): no round-trip time, bytes at
 * memory-copy speed (~10 GB/s); serialization itself is priced by the table's save and load.
 */
export const IN_PROCESS_LINK: Link = { rttMs: 0, bytesPerMs: 1e7, note: 'in-process: evaluator and key holder in one process (no round-trip time, bytes at ~10 GB/s)' };

const BITS_PER_SECOND: Record<string, number> = { bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9 };

/**
 * The link of `--link`: `in-process`, `rtt=50ms,bandwidth=100Mbit` (rtt in ms, s or us; bandwidth
 * in bit, kbit, Mbit or Gbit per second), or RTT_MS/BYTES_PER_MS (e.g. 20/12500: the passes' `link`
 * option, which cannot hold commas). Errors name the flag and what is wrong.
 */
export function parseLink(spec: string): Link {
  if (spec === 'in-process') return IN_PROCESS_LINK;
  const raw = /^([0-9.e+-]+)\/([0-9.e+-]+)$/.exec(spec);
  if (raw) {
    const [rttMs, bytesPerMs] = [Number(raw[1]), Number(raw[2])];
    if (!(rttMs >= 0) || !(bytesPerMs > 0)) throw new FhecError(`link '${spec}' needs RTT_MS >= 0 and BYTES_PER_MS > 0`, { field: 'link' });
    return { rttMs, bytesPerMs, note: `given: ${rttMs} ms round trip, ${bytesPerMs} bytes/ms` };
  }
  const fields = new Map<string, string>();
  for (const part of spec.split(',')) {
    const m = part.trim().match(/^(\w+)=(.+)$/);
    if (!m) throw new FhecError(`'${part}' is not key=value (expected in-process or rtt=50ms,bandwidth=100Mbit)`, { field: '--link' });
    if (m[1] !== 'rtt' && m[1] !== 'bandwidth') throw new FhecError(`unknown link field '${m[1]}' (rtt, bandwidth)`, { field: '--link' });
    fields.set(m[1]!, m[2]!.trim());
  }
  const rtt = fields.get('rtt');
  const bw = fields.get('bandwidth');
  if (rtt === undefined || bw === undefined) throw new FhecError(`needs both rtt and bandwidth, e.g. rtt=50ms,bandwidth=100Mbit`, { field: '--link' });
  const r = rtt.match(/^(\d+(?:\.\d+)?)\s*(us|ms|s)$/);
  if (!r) throw new FhecError(`rtt '${rtt}' is not a duration such as 50ms, 0.2s or 300us`, { field: '--link' });
  const rttMs = Number(r[1]) * (r[2] === 's' ? 1000 : r[2] === 'us' ? 1e-3 : 1);
  const b = bw.match(/^(\d+(?:\.\d+)?)\s*(bit|kbit|Mbit|Gbit)(?:\/s)?$/i);
  if (!b || !(Number(b[1]) > 0)) throw new FhecError(`bandwidth '${bw}' is not a positive rate such as 100Mbit or 1Gbit`, { field: '--link' });
  const bytesPerMs = (Number(b[1]) * BITS_PER_SECOND[b[2]!.toLowerCase()]!) / 8 / 1000;
  return { rttMs, bytesPerMs, note: `--link ${spec}` };
}

/** The table with another link (the ops' timings unchanged). */
export function withLink(table: CostTable, link: Link): CostTable {
  return { ...table, link };
}
