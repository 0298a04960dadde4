// Measures per-operation costs of a CKKS backend on this machine, through fhec's own backend interface
// (the same calls the executor makes): the median time of each op at a set of levels, ciphertext sizes
// and serialization cost per byte. `fhec calibrate-costs` turns the results into a cost table
// (ir/ckks/cost-table.ts); `npm run bench` prints them for the standard chain.

import type { CkksBackend, CkksHandle } from '../backend.js';
import { IN_PROCESS_LINK, type CostTable, type RingCosts, type TimedOp } from '../../ir/ckks/cost-table.js';
import { makeParameters, topLevel, type CkksParameters } from '../../ir/ckks/params.js';

/**
 * Chains the calibration times, per ring degree: as many data primes as 128-bit security allows at
 * 28 bits (30 at N=32768, where a longer chain's keys would not fit the wasm heap twice), so that most
 * levels a real chain reaches are measured rather than extrapolated.
 */
export const MEASUREMENT_CHAINS: Readonly<Record<number, readonly number[]>> = {
  4096: [36, 36, 36],
  8192: [38, 28, 28, 28, 28, 28, 38],
  16384: [37, ...new Array<number>(13).fill(28), 37],
  32768: [40, ...new Array<number>(15).fill(30), 40],
};

function measurementParameters(ringDegree: number): CkksParameters {
  const bitSizes = MEASUREMENT_CHAINS[ringDegree];
  if (!bitSizes) throw new Error(`no measurement chain for N=${ringDegree}`);
  return makeParameters({ ringDegree, bitSizes: [...bitSizes], scale: 2 ** Math.min(28, bitSizes[0]! - 8) });
}

/** `count` levels spread over 0..top, always including both ends. */
function spreadLevels(top: number, count: number): number[] {
  if (count >= top + 1) return Array.from({ length: top + 1 }, (_, i) => i);
  const out = new Set<number>();
  for (let i = 0; i < count; i++) out.add(Math.round((i * top) / (count - 1)));
  return [...out].sort((a, b) => a - b);
}

/**
 * Milliseconds now on `clock`. 'cpu' is this process's CPU time (user + system): on a shared machine
 * other processes stretch wall time but not the work an op does, which is what a cost table should hold
 * (on an idle core the two agree).
 */
export function clockMs(clock: 'cpu' | 'wall'): number {
  if (clock === 'wall') return performance.now();
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * Median time (ms) of f over `reps` timed samples after one warm-up call. Each sample repeats f enough
 * times to last about 0.5 ms, so cheap ops are not lost in the clock's resolution.
 */
export function timeMedian(f: () => void, reps = 7, clock: 'cpu' | 'wall' = 'cpu'): number {
  const t0 = clockMs(clock);
  f();
  const first = clockMs(clock) - t0;
  const batch = Math.max(1, Math.min(200, Math.ceil(0.5 / Math.max(first, 1e-3))));
  const samples: number[] = [];
  for (let i = 0; i < reps; i++) {
    const s = clockMs(clock);
    for (let j = 0; j < batch; j++) f();
    samples.push((clockMs(clock) - s) / batch);
  }
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1]!;
}

export interface MeasureRingOptions {
  /** Levels to time; default: all of them (spreadLevels for long chains). */
  levels?: number[];
  /** Timed samples per op (median); default 7. */
  reps?: number;
  /** Progress lines (one per level). */
  log?: (line: string) => void;
  /** Default 'cpu' (see clockMs). */
  clock?: 'cpu' | 'wall';
  /** Also time encode/encrypt on a two-prime chain (default true; see cost-table.ts). */
  shortChain?: boolean;
}

/** Times every op of the table at the given levels of `params` on `backend`. */
export async function measureRingCosts(backend: CkksBackend, params: CkksParameters, options: MeasureRingOptions = {}): Promise<RingCosts> {
  const reps = options.reps ?? 7;
  const clock = options.clock ?? 'cpu';
  const top = topLevel(params);
  const levels = [...new Set([...(options.levels ?? spreadLevels(top, 8)), top])];
  const slots = params.ringDegree / 2;
  const scale = params.scale;
  const client = await backend.createClient(params, { galoisSteps: [1], relin: true });
  const ev = await backend.createEvaluator(params, client.evaluationKeys());
  const ops: Partial<Record<TimedOp, Record<string, number>>> = {};
  const bytesByLevel: Record<string, number> = {};
  const put = (op: TimedOp, level: number, ms: number) => ((ops[op] ??= {})[String(level)] = ms);
  const timed = (op: TimedOp, level: number, f: () => CkksHandle | void) =>
    put(op, level, timeMedian(() => {
      const h = f();
      if (h) ev.free(h);
    }, reps, clock));
  let seed = 12345;
  const values = Float64Array.from({ length: slots }, () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 2 ** 31 - 1;
  });
  try {
    for (const level of [...levels].sort((a, b) => b - a)) {
      const t0 = performance.now();
      const bytes = client.encrypt(values, level, scale);
      bytesByLevel[String(level)] = bytes.length;
      const x = ev.loadCiphertext(bytes);
      const y = ev.loadCiphertext(client.encrypt(values, level, scale));
      const pt = ev.encode(values, level, scale);
      if (level === top) {
        // Priced by the chain's top (see cost-table.ts): timed once, at the top.
        timed('encode', level, () => ev.encode(values, level, scale));
        put('encrypt', level, timeMedian(() => void client.encrypt(values, level, scale), reps, clock));
      }
      put('decrypt', level, timeMedian(() => void client.decrypt(bytes), reps, clock));
      put('save', level, timeMedian(() => void ev.saveCiphertext(x), reps, clock));
      timed('load', level, () => ev.loadCiphertext(bytes));
      timed('add', level, () => ev.add(x, y));
      timed('sub', level, () => ev.sub(x, y));
      timed('negate', level, () => ev.negate(x));
      timed('add_plain', level, () => ev.addPlain(x, pt));
      timed('rotate', level, () => ev.rotate(x, 1));
      // Products at level 0 would exceed the last prime, and nothing rescales below it.
      if (level > 0) {
        timed('mul_plain', level, () => ev.mulPlain(x, pt));
        timed('mul', level, () => ev.mul(x, y));
        const prod = ev.mul(x, y);
        timed('relinearize', level, () => ev.relinearize(prod));
        const rl = ev.relinearize(prod);
        timed('rescale', level, () => ev.rescale(rl));
        timed('mod_switch', level, () => ev.modSwitch(x));
        ev.free(prod);
        ev.free(rl);
      }
      [x, y, pt].forEach((h) => ev.free(h));
      options.log?.(`N=${params.ringDegree} level ${level}: ${(performance.now() - t0).toFixed(0)} ms (rotate ${ops.rotate![String(level)]!.toFixed(3)} ms)`);
    }
  } finally {
    ev.dispose();
    client.dispose();
  }
  if (options.shortChain !== false && top > 1) {
    // encode/encrypt again on a two-prime chain, for their growth with the chain's length.
    const short = makeParameters({ ringDegree: params.ringDegree, bitSizes: [params.bitSizes[0]!, params.bitSizes[1]!, params.bitSizes.at(-1)!], scale });
    const c = await backend.createClient(short, { galoisSteps: [], relin: false });
    const e = await backend.createEvaluator(short, c.evaluationKeys());
    try {
      put('encode', 1, timeMedian(() => e.free(e.encode(values, 1, scale)), reps, clock));
      put('encrypt', 1, timeMedian(() => void c.encrypt(values, 1, scale), reps, clock));
    } finally {
      e.dispose();
      c.dispose();
    }
  }
  // ms per byte: least squares through the origin over the measured levels.
  const perByte = (op: 'save' | 'load') => {
    let xy = 0;
    let xx = 0;
    for (const [l, b] of Object.entries(bytesByLevel)) {
      xy += b * ops[op]![l]!;
      xx += b * b;
    }
    return xx > 0 ? xy / xx : 0;
  };
  return {
    ringDegree: params.ringDegree,
    bitSizes: [...params.bitSizes],
    reps,
    ops,
    ciphertextBytes: bytesByLevel,
    serialization: { saveMsPerByte: perByte('save'), loadMsPerByte: perByte('load') },
  };
}

export interface CalibrateOptions {
  ringDegrees: number[];
  /** Fewer levels (3) and samples (3): about a second at N=8192. */
  quick?: boolean;
  /** Samples per op; default 3 when quick, else 7 (and 3 at N=32768, whose ops take 0.1-1 s). */
  reps?: number;
  log?: (line: string) => void;
  provenance: Omit<CostTable['provenance'], 'reps' | 'quick'>;
  link?: CostTable['link'];
}

/** What `fhec generate` runs: evaluator and key holder in one process (fhec compile --link prices another link). */
export const DEFAULT_LINK: CostTable['link'] = IN_PROCESS_LINK;

/** Measures each ring degree on its measurement chain and assembles a cost table. */
export async function calibrateCosts(backend: CkksBackend, options: CalibrateOptions): Promise<CostTable> {
  const rings: RingCosts[] = [];
  let reps = 0;
  for (const n of options.ringDegrees) {
    const params = measurementParameters(n);
    const top = topLevel(params);
    const r = options.reps ?? (options.quick || n >= 32768 ? 3 : 7);
    reps = Math.max(reps, r);
    const levels = spreadLevels(top, options.quick ? 3 : n >= 32768 ? 5 : 8);
    options.log?.(`N=${n}: chain [${params.bitSizes.join(', ')}], levels ${levels.join(', ')}, ${r} samples per op`);
    rings.push(await measureRingCosts(backend, params, { levels, reps: r, log: options.log }));
  }
  return {
    format: 'fhec-cost-table',
    version: 1,
    provenance: { ...options.provenance, reps, quick: options.quick ?? false },
    link: options.link ?? DEFAULT_LINK,
    ringDegrees: rings,
  };
}
