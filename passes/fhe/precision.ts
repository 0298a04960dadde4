// Precision budget of a managed FHE program: for every value, a bound on its absolute error against the
// noise-free float64 evaluation of the same program (plus the approximation error of polynomial steps
// when the caller states it), and the bits of precision left relative to the value's magnitude bound.
// Outputs are checked against what they need; the report names the op behind a shortfall.
//
// The error of a value has three parts:
// - flat CKKS noise (encryption, encoding of dense plaintexts, rescale rounding, key switching), with
//   the variances of ir/ckks/noise.ts (the simulator's model), tracked as a linear combination of
//   independent noise *sources*. The error of source S in slot u is S[u]; slots of one source are
//   uncorrelated (the canonical embedding of independent coefficients), so after a rotation by k the
//   slot u holds S[u+k], a different random variable: a source is keyed by (op, cumulative rotation).
//   Equal keys add linearly (x + x doubles the error), distinct keys add in quadrature (the sqrt(D)
//   of a D-term matrix-vector product). Multiplying by a value scales a term by its magnitude bound.
// - the key-switching "spike" (measured on node-seal; not in noise.ts): SEAL decomposes a ciphertext
//   into digits in [0, q_j), not centred, so the mean digit q_j/2 times the key's error e_j leaves a
//   fixed error (q_j / 2P) e_j (1 + X + ... + X^(N-1)) for every use of a key. In slot u (root
//   zeta^(3^u)) the all-ones polynomial is 2 / (1 - zeta_u): large where 3^u mod 2N is near 0 or 2N
//   (slot 0 first: about 2N/pi), so this error sits in a few slots, about 50x the noise elsewhere at
//   N=8192. It is the same for every ciphertext switched with one key (equal keys add linearly) and is
//   tracked with its slot profile, per peak slot (a plaintext that is zero there removes it); its sd at
//   the peak is sqrt(N sigma^2 / 2 sum_j (q_j/2P)^2) csc(pi / 2N) / scale (0.8-1.0x of measured).
// - deterministic errors with worst-case bounds: the stated approximation errors, the rounding of
//   scalar (splat) plaintexts (the same in every slot, so it must not be treated as random), and the
//   second-order products of errors (dx * dy, from the operands' bounds).
//
// Tails: flat slot errors are not Gaussian. The dominant terms are products with the secret key (r s),
// and |s(zeta_u)|^2 varies from slot to slot like an exponential variable, which makes a slot error
// Laplace-distributed (kurtosis 6, measured): P(|X| > t sd) = exp(-sqrt(2) t). The spike is Gaussian
// (the key's error at one root) and concentrated in few slots. The bound is
//   tail_flat * sd_flat + tail_spike * sd_spike(worst slot) + deterministic,
// each tail union-bounded over the slots at failureProbability / 2. `typicalError` is the same model
// with tails at probability 1/2: an estimate of a run's largest slot error, not a bound.
//
// Magnitude bounds come from interval arithmetic on the inputs' bounds, tightened by per-value bounds
// the caller may give (from calibration, from a lowering's knowledge, or from a float64 run:
// magnitudeBoundsFromPlain). Interval arithmetic alone explodes on polynomial evaluations (|T_k| <= 1
// becomes 3, 19, ...), so per-value bounds matter there.

import { FhecError } from '../../ir/errors.js';
import type { FheOp, FheOpKind, FheProgram } from '../../ir/fhe/types.js';
import { constantValueAt } from '../../ir/fhe/types.js';
import { encodeVariance, freshVariance, keySwitchVariance, NOISE_SIGMA, rescaleVariance } from '../../ir/ckks/noise.js';
import type { CkksParameters } from '../../ir/ckks/params.js';
import { evaluatePlain, maxAbs } from '../../ir/fhe/plain-eval.js';
import { normalizeStep } from '../../ir/ckks/rotation-keys.js';

export interface PrecisionRequirement {
  /** Largest absolute error the output may have. */
  absError?: number;
  /** Fewest bits of precision the output must keep: log2(magnitude bound / error bound). */
  bits?: number;
}

export interface PrecisionOptions {
  /** The parameters the program is typed against (ring degree, data primes, special prime). */
  params: CkksParameters;
  /** max |x| per input tensor; inputs without one are assumed within [-1, 1] (listed in assumedInputs). */
  inputBounds?: Record<string, number>;
  /** Per-value magnitude bounds (by SSA name); the tighter of this and interval arithmetic is used. */
  valueBounds?: Map<string, number>;
  /** Per-value absolute approximation error of the polynomial step that ends at that value. */
  approximationErrors?: Map<string, number>;
  /** What each output needs: one requirement for all outputs, or one per output tensor. */
  required?: PrecisionRequirement | Record<string, PrecisionRequirement>;
  /** Probability that a value's largest slot error exceeds its bound; default 2^-20. */
  failureProbability?: number;
  /**
   * The Galois key steps one rotation by `step` applies, in order (several when composed from
   * power-of-two keys, see ir/ckks/rotation-keys.ts); default: its own key.
   */
  rotationKeySteps?: (step: number) => number[];
  /** Above this many tracked noise terms a value's terms are folded into one (conservative) bound. */
  maxTerms?: number;
}

export type NoiseSourceKind = 'fresh' | 'encode' | 'rescale' | 'keyswitch' | 'keyswitch-spike' | 'approximation' | 'product' | 'refresh';

export interface NoiseSource {
  /** The value whose op made the error (for a key's spike: the first op that used the key). */
  value: string;
  op: FheOpKind;
  kind: NoiseSourceKind;
  /** For key-switching spikes: the key ('galois STEP' or 'relin'). */
  key?: string;
}

export interface ValuePrecision {
  name: string;
  op: FheOpKind;
  level: number;
  scale: number;
  /** Bound on max |value| over the slots. */
  magnitude: number;
  /** Standard deviation of the random part of the error at the worst slot. */
  sd: number;
  /** Worst-case bound of the deterministic part. */
  deterministic: number;
  /** Predicted bound on the absolute error in every slot: tails * random parts + deterministic. */
  error: number;
  /** Bits of precision left: log2(magnitude / error). */
  bits: number;
  /**
   * The error to expect in a typical run (the median of the largest slot error, same model with tails
   * at probability 1/2 instead of failureProbability): an estimate, not a bound.
   */
  typicalError: number;
  /** log2(magnitude / typicalError). */
  typicalBits: number;
}

export interface Contribution {
  source: NoiseSource;
  /** Part of the value's error bound due to this source (tail * its sd at its worst slot, or its bound). */
  error: number;
}

export interface OutputPrecision {
  tensor: string;
  value: ValuePrecision;
  requirement?: PrecisionRequirement;
  ok: boolean;
  /** The sources that make most of the error, largest first. */
  contributors: Contribution[];
}

export interface Overflow {
  value: string;
  op: FheOpKind;
  level: number;
  /** log2((magnitude + error) * scale) against log2 of the modulus at that level. */
  bits: number;
  modulusBits: number;
}

export interface PrecisionReport {
  values: Map<string, ValuePrecision>;
  outputs: OutputPrecision[];
  /** Outputs whose bound misses their requirement. */
  shortfalls: OutputPrecision[];
  /** Ciphertexts whose magnitude bound times scale does not fit the modulus at their level. */
  overflows: Overflow[];
  /** Inputs with no stated bound (assumed |x| <= 1). */
  assumedInputs: string[];
  /** The tail factor of the flat (Laplace-tailed) noise. */
  tail: number;
  ok: boolean;
}

/** Error state of one value. */
interface ErrorState {
  /** Noise with the same variance in every slot: key "source@offset" -> standard deviation. */
  flat: Map<string, number>;
  /** Key-switching spikes: key "source@offset" -> amplitudes (see SpikeTerm). */
  spike: Map<string, SpikeTerm>;
  /** Folded terms, added linearly to everything (a bound valid under any correlation). */
  folded: number;
  /** Deterministic bounds by source index. */
  det: Map<number, number>;
  /** Folded terms by source index, for attribution only. */
  foldedBy?: Map<number, number>;
}

/**
 * A spike term: the standard deviation it has at each of the profile's peak slots (scaled one by one
 * when a plaintext multiplies it, so a mask that zeroes the peak slot removes it), and a bound `c` for
 * every other slot (relative to the profile there).
 */
interface SpikeTerm {
  c: number;
  peaks: Float64Array;
}

function addSpike(m: Map<string, SpikeTerm>, k: string, t: SpikeTerm, f: number): void {
  const cur = m.get(k);
  if (!cur) {
    m.set(k, { c: t.c * f, peaks: t.peaks.map((x) => x * f) });
    return;
  }
  cur.c += t.c * f;
  for (let i = 0; i < cur.peaks.length; i++) cur.peaks[i]! += t.peaks[i]! * f;
}

const termKey = (source: number, offset: number): string => `${source}@${offset}`;
const termSource = (key: string): number => Number(key.slice(0, key.indexOf('@')));
const termOffset = (key: string): number => Number(key.slice(key.indexOf('@') + 1));

function emptyState(): ErrorState {
  return { flat: new Map(), spike: new Map(), folded: 0, det: new Map() };
}

function addInto<K>(m: Map<K, number>, k: K, v: number): void {
  if (v !== 0) m.set(k, (m.get(k) ?? 0) + v);
}

/** a * |fa| + b * |fb| (terms with equal keys add linearly). */
function combine(a: ErrorState, fa: number, b: ErrorState | undefined, fb: number): ErrorState {
  const out = emptyState();
  const put = (s: ErrorState, f: number) => {
    if (f === 0) return;
    for (const [k, c] of s.flat) addInto(out.flat, k, c * f);
    for (const [k, t] of s.spike) addSpike(out.spike, k, t, f);
    for (const [k, c] of s.det) addInto(out.det, k, c * f);
    out.folded += s.folded * f;
    if (s.foldedBy) {
      out.foldedBy ??= new Map();
      for (const [k, c] of s.foldedBy) addInto(out.foldedBy, k, c * f);
    }
  };
  put(a, Math.abs(fa));
  if (b) put(b, Math.abs(fb));
  return out;
}

function rotated(s: ErrorState, step: number, slots: number): ErrorState {
  const moved = (k: string) => termKey(termSource(k), (((termOffset(k) + step) % slots) + slots) % slots);
  const flat = new Map<string, number>();
  for (const [k, c] of s.flat) addInto(flat, moved(k), c);
  const spike = new Map<string, SpikeTerm>();
  for (const [k, t] of s.spike) addSpike(spike, moved(k), t, 1);
  return { flat, spike, folded: s.folded, det: new Map(s.det), foldedBy: s.foldedBy && new Map(s.foldedBy) };
}

/**
 * Relative variance of the key-switching spike in each slot: |2 / (1 - zeta_u)|^2 normalised to 1 at
 * its peak, zeta_u = exp(i pi m_u / N) with m_u = 3^u mod 2N (SEAL's slot order), i.e.
 * sin^2(pi / 2N) / sin^2(pi m_u / 2N).
 */
export interface SpikeProfile {
  g: Float64Array;
  /** The K largest values of g and their slots. */
  peaks: { slot: number; g: number }[];
  /** Largest g outside the peaks. */
  rest: number;
}

const profiles = new Map<number, SpikeProfile>();
const PEAKS = 16;

export function spikeProfile(ringDegree: number): SpikeProfile {
  let p = profiles.get(ringDegree);
  if (p) return p;
  const slots = ringDegree / 2;
  const m2 = 2 * ringDegree;
  const g = new Float64Array(slots);
  const base = Math.sin(Math.PI / m2) ** 2;
  let pos = 1;
  for (let u = 0; u < slots; u++) {
    g[u] = base / Math.sin((Math.PI * pos) / m2) ** 2;
    pos = (pos * 3) % m2;
  }
  const order = Array.from(g.keys()).sort((a, b) => g[b]! - g[a]!);
  const k = Math.min(PEAKS, slots);
  p = { g, peaks: order.slice(0, k).map((slot) => ({ slot, g: g[slot]! })), rest: k < slots ? g[order[k]!]! : 0 };
  profiles.set(ringDegree, p);
  return p;
}

interface SpikeBound {
  /** max over slots of the spike variance (an upper bound). */
  variance: number;
  /** Tail factor per probability p asked for: P(some slot's spike error > tail * sqrt(variance)) <= p. */
  tails: number[];
}

/**
 * max over slots u of sum_o w_o g(u + o), bounded above using the profile's peaks, and a Gaussian tail
 * factor for it: the spike error is Gaussian (the key's error evaluated at a root, times a constant),
 * and only the candidate slots (where some peak lands) can carry the full variance; every other slot
 * carries at most rest * total.
 */
function spikeBound(spike: Map<string, SpikeTerm>, profile: SpikeProfile, slots: number, ps: number[]): SpikeBound {
  if (spike.size === 0) return { variance: 0, tails: ps.map(() => 0) };
  // Variance per offset and peak (different sources at one offset are independent).
  const w = new Map<number, Float64Array>();
  let total = 0;
  for (const [k, t] of spike) {
    const o = termOffset(k);
    let v = w.get(o);
    if (!v) w.set(o, (v = new Float64Array(t.peaks.length)));
    for (let i = 0; i < v.length; i++) v[i]! += t.peaks[i]! ** 2;
    total += t.c * t.c;
  }
  // sum over terms of the variance at slot u: at most what the peaks landing on u carry, plus
  // rest * total for the others; it is largest where some peak lands: u = peak - o.
  const candidates = new Map<number, number>();
  for (const o of w.keys()) {
    for (const pk of profile.peaks) {
      const u = (((pk.slot - o) % slots) + slots) % slots;
      if (candidates.has(u)) continue;
      let v = 0;
      profile.peaks.forEach((q, i) => {
        const wo = w.get((((q.slot - u) % slots) + slots) % slots);
        if (wo !== undefined) v += wo[i]! * q.g;
      });
      candidates.set(u, v);
    }
  }
  const rest = profile.rest * total;
  let best = 0;
  for (const v of candidates.values()) best = Math.max(best, v);
  const variance = best + rest;
  // Smallest t whose union bound over the slots (Gaussian tails, each slot at its own variance) is <= p:
  // sum over candidates of e^(-t^2 V / (2 V_u)) + (other slots) e^(-t^2 V / (2 rest)).
  const fails = (t: number) => {
    let f = rest > 0 ? slots * Math.exp((-t * t * variance) / (2 * rest)) : 0;
    for (const v of candidates.values()) f += Math.exp((-t * t * variance) / (2 * (v + rest)));
    return f;
  };
  const tails = ps.map((p) => {
    let lo = 0;
    let hi = 64;
    for (let i = 0; i < 60; i++) {
      const mid = (lo + hi) / 2;
      if (fails(mid) > p) lo = mid;
      else hi = mid;
    }
    return hi;
  });
  return { variance, tails };
}

/** Tail factor t with P(max over `slots` slot errors > t sd) <= p for Laplace-tailed slot errors. */
export function laplaceTail(slots: number, p: number): number {
  return Math.log(slots / p) / Math.SQRT2;
}

/** Per-value magnitude bounds (max |v| over the slots, times 1 + margin) from a float64 run of the program. */
export function magnitudeBoundsFromPlain(program: FheProgram, tensors: Record<string, ArrayLike<number>>, margin = 0): Map<string, number> {
  const run = evaluatePlain(program, tensors);
  const out = new Map<string, number>();
  for (const [name, v] of run.values) out.set(name, maxAbs(v) * (1 + margin));
  return out;
}

function checkParams(program: FheProgram, params: CkksParameters): void {
  const chain = program.chain;
  if (!chain) throw new FhecError('precision analysis needs a managed program (run scale management first)');
  const data = params.primes.slice(0, -1);
  if (chain.ringDegree !== params.ringDegree || chain.primes.length !== data.length || chain.primes.some((q, i) => q !== data[i])) {
    throw new FhecError('program was typed for another modulus chain than these parameters');
  }
}

function log2Big(q: bigint): number {
  const bits = q.toString(2).length;
  const shift = Math.max(0, bits - 53);
  return Math.log2(Number(q >> BigInt(shift))) + shift;
}

function requirementFor(req: PrecisionOptions['required'], tensor: string): PrecisionRequirement | undefined {
  if (!req) return undefined;
  const r = req as PrecisionRequirement;
  if (typeof r.absError === 'number' || typeof r.bits === 'number') return r;
  return (req as Record<string, PrecisionRequirement>)[tensor];
}

export function meetsRequirement(v: ValuePrecision, r: PrecisionRequirement | undefined): boolean {
  if (!r) return true;
  if (r.absError !== undefined && !(v.error <= r.absError)) return false;
  if (r.bits !== undefined && !(v.bits >= r.bits)) return false;
  return true;
}

/** Standard deviation at the spike's peak for one key switch at `level` (see the header). */
function spikePeakSd(params: CkksParameters, level: number, scale: number): number {
  const n = params.ringDegree;
  const special = Number(params.primes[params.primes.length - 1]!);
  let s2 = 0;
  for (let j = 0; j <= level; j++) s2 += (Number(params.primes[j]!) / (2 * special)) ** 2;
  return Math.sqrt(0.5 * n * NOISE_SIGMA * NOISE_SIGMA * s2) / Math.sin(Math.PI / (2 * n)) / scale;
}

export function analyzePrecision(program: FheProgram, options: PrecisionOptions): PrecisionReport {
  const { params } = options;
  checkParams(program, params);
  const n = params.ringDegree;
  const slots = program.slots;
  const special = params.primes[params.primes.length - 1]!;
  const p = options.failureProbability ?? 2 ** -20;
  const tail = laplaceTail(slots, p / 2);
  const maxTerms = options.maxTerms ?? 20000;
  const keySteps = options.rotationKeySteps ?? ((step: number) => [normalizeStep(step, slots)]);
  const profile = spikeProfile(n);
  const inputBounds = options.inputBounds ?? {};
  const assumedInputs: string[] = [];
  const levelLog2Q: number[] = [];
  let q = 1n;
  for (const prime of program.chain!.primes) {
    q *= prime;
    levelLog2Q.push(log2Big(q));
  }

  const sources: NoiseSource[] = [];
  const source = (op: FheOp, kind: NoiseSourceKind, key?: string): number => {
    sources.push({ value: op.result?.name ?? op.kind, op: op.kind, kind, ...(key ? { key } : {}) });
    return sources.length - 1;
  };
  // One spike source per key: every use of a key leaves the same fixed error.
  const spikeSources = new Map<string, number>();
  const spikeSource = (op: FheOp, key: string): number => {
    let s = spikeSources.get(key);
    if (s === undefined) {
      s = source(op, 'keyswitch-spike', key);
      spikeSources.set(key, s);
    }
    return s;
  };
  const states = new Map<string, ErrorState>();
  const magnitude = new Map<string, number>();
  const values = new Map<string, ValuePrecision>();
  const outputs: OutputPrecision[] = [];
  const overflows: Overflow[] = [];
  const plainMax = new Map<string, number>();
  /** Slot values of dense plaintexts (by value), to scale spikes slot by slot. */
  const plainSlots = new Map<string, Float64Array>();
  // After x * w: each spike term of x (scaled by max |w| in combine) is rescaled at its peaks by
  // |w[peak slot]| / max |w| (a dense plaintext that is zero where the spike sits removes it).
  const maskSpikes = (s: ErrorState, x: string, w: string, values: Float64Array | undefined): void => {
    const mw = mag(w);
    if (!values || mw === 0) return;
    for (const key of state(x).spike.keys()) {
      const t = s.spike.get(key);
      if (!t) continue;
      // Only this operand's share can be rescaled; the plaintext's own error has no spikes.
      const o = termOffset(key);
      profile.peaks.forEach((pk, i) => {
        const u = (((pk.slot - o) % slots) + slots) % slots;
        t.peaks[i]! *= Math.abs(u < values.length ? values[u]! : 0) / mw;
      });
    }
  };

  const state = (name: string): ErrorState => {
    const s = states.get(name);
    if (!s) throw new FhecError(`%${name} is used before it is defined`);
    return s;
  };
  const boundOf = (name: string): number => values.get(name)!.error;
  const detOf = (s: ErrorState): number => {
    let d = 0;
    for (const c of s.det.values()) d += c;
    return d;
  };
  /** Flat (Laplace-tailed) and spike (Gaussian, few slots) parts bounded separately, p/2 each. */
  const typicalTail = laplaceTail(slots, 0.5);
  const randomBound = (s: ErrorState): { sd: number; error: number; typical: number } => {
    let v = 0;
    for (const c of s.flat.values()) v += c * c;
    const flatSd = Math.sqrt(v) + s.folded;
    const sp = spikeBound(s.spike, profile, slots, [p / 2, 0.5]);
    const spikeSd = Math.sqrt(sp.variance);
    // Typical: the larger of the two parts' medians (they peak in different slots).
    const typical = Math.max(typicalTail * flatSd, sp.tails[1]! * spikeSd);
    return { sd: Math.hypot(flatSd, spikeSd), error: tail * flatSd + sp.tails[0]! * spikeSd, typical };
  };
  const mag = (name: string): number => magnitude.get(name)!;
  const bounded = (name: string, interval: number): number => {
    const given = options.valueBounds?.get(name);
    return given !== undefined && given < interval ? given : interval;
  };
  const addFlat = (s: ErrorState, src: number, sd: number): void => addInto(s.flat, termKey(src, 0), sd);
  // Product of the two operands' errors, bounded by their tails, attributed to this op.
  const secondOrder = (x: string, y: string): number => boundOf(x) * boundOf(y);
  const fold = (s: ErrorState): void => {
    if (s.flat.size + s.spike.size <= maxTerms) return;
    s.foldedBy ??= new Map();
    let v = 0;
    for (const [k, c] of s.flat) {
      v += c * c;
      addInto(s.foldedBy, termSource(k), c);
    }
    s.folded += Math.sqrt(v);
    // A spike's peak is its worst slot: folding it linearly at the peak is a valid bound.
    for (const [k, t] of s.spike) {
      const c = Math.max(t.c, ...t.peaks);
      s.folded += c;
      addInto(s.foldedBy, termSource(k), c);
    }
    s.flat.clear();
    s.spike.clear();
  };
  const keySwitch = (s: ErrorState, op: FheOp, key: string, level: number, scale: number): void => {
    addFlat(s, source(op, 'keyswitch'), Math.sqrt(keySwitchVariance(n, params.primes.slice(0, level + 1), special, scale)));
    const a = spikePeakSd(params, level, scale);
    addSpike(s.spike, termKey(spikeSource(op, key), 0), { c: a, peaks: new Float64Array(profile.peaks.length).fill(a) }, 1);
  };

  for (const op of program.ops) {
    const args = op.args;
    if (op.kind === 'output') {
      const name = args[0]!.name;
      const v = values.get(name)!;
      const requirement = requirementFor(options.required, op.tensor!);
      outputs.push({ tensor: op.tensor!, value: v, requirement, ok: meetsRequirement(v, requirement), contributors: contributors(state(name)) });
      continue;
    }
    const res = op.result!;
    const t = res.type;
    let s: ErrorState;
    let m: number;
    switch (op.kind) {
      case 'input': {
        const b = inputBounds[op.tensor!];
        if (b === undefined) assumedInputs.push(op.tensor!);
        m = b ?? 1;
        s = emptyState();
        addFlat(s, source(op, 'fresh'), Math.sqrt(freshVariance(n, t.scale!)));
        break;
      }
      case 'encode': {
        const c = program.constants.get(op.constant!);
        if (!c) throw new FhecError(`unknown constant @${op.constant}`);
        s = emptyState();
        if (c.data.kind === 'splat') {
          // One rounded coefficient: the same error in every slot, at most 1/2 / scale, plus the
          // encoder's floating-point error relative to the value.
          m = Math.abs(c.data.value);
          addInto(s.det, source(op, 'encode'), 0.5 / t.scale! + m * 2 ** -45);
        } else {
          let w = plainMax.get(c.name);
          if (w === undefined) {
            w = 0;
            for (let i = 0; i < slots; i++) w = Math.max(w, Math.abs(constantValueAt(c.data, i)));
            plainMax.set(c.name, w);
          }
          m = w;
          if (c.data.kind === 'dense') plainSlots.set(res.name, c.data.values);
          addFlat(s, source(op, 'encode'), Math.sqrt(encodeVariance(n, t.scale!)));
        }
        break;
      }
      case 'add':
      case 'sub':
      case 'add_plain':
        s = combine(state(args[0]!.name), 1, state(args[1]!.name), 1);
        m = mag(args[0]!.name) + mag(args[1]!.name);
        break;
      case 'negate':
      case 'mod_switch':
        // mod_switch drops a prime: exact.
        s = combine(state(args[0]!.name), 1, undefined, 0);
        m = mag(args[0]!.name);
        break;
      case 'mul':
      case 'mul_plain': {
        const [x, y] = [args[0]!.name, args[1]!.name];
        s = combine(state(x), mag(y), state(y), mag(x));
        if (op.kind === 'mul_plain') maskSpikes(s, x, y, plainSlots.get(y));
        addInto(s.det, source(op, 'product'), secondOrder(x, y));
        m = mag(x) * mag(y);
        break;
      }
      case 'relinearize':
        s = combine(state(args[0]!.name), 1, undefined, 0);
        keySwitch(s, op, 'relin', t.level!, t.scale!);
        m = mag(args[0]!.name);
        break;
      case 'rotate': {
        s = state(args[0]!.name);
        for (const k of keySteps(op.step!)) {
          s = rotated(s, k, slots);
          keySwitch(s, op, `galois ${normalizeStep(k, slots)}`, t.level!, t.scale!);
        }
        if (s === state(args[0]!.name)) s = combine(s, 1, undefined, 0);
        m = mag(args[0]!.name);
        break;
      }
      case 'rescale': {
        const size = args[0]!.type.kind === 'ct' ? args[0]!.type.size : 2;
        s = combine(state(args[0]!.name), 1, undefined, 0);
        addFlat(s, source(op, 'rescale'), Math.sqrt(rescaleVariance(n, t.scale!, size)));
        m = mag(args[0]!.name);
        break;
      }
      case 'refresh': {
        // The key holder decrypts (keeping the error so far) and encrypts afresh at the new level; the
        // additive mask is encoded twice (added, then removed): two plaintext roundings.
        s = combine(state(args[0]!.name), 1, undefined, 0);
        addFlat(s, source(op, 'refresh'), Math.sqrt(freshVariance(n, t.scale!) + 2 * encodeVariance(n, t.scale!)));
        m = mag(args[0]!.name);
        break;
      }
    }
    const approx = options.approximationErrors?.get(res.name);
    if (approx !== undefined) addInto(s.det, source(op, 'approximation'), Math.abs(approx));
    fold(s);
    m = bounded(res.name, m);
    states.set(res.name, s);
    magnitude.set(res.name, m);
    const rb = randomBound(s);
    const sd = rb.sd;
    const det = detOf(s);
    const error = rb.error + det;
    values.set(res.name, {
      name: res.name,
      op: op.kind,
      level: t.level!,
      scale: t.scale!,
      magnitude: m,
      sd,
      deterministic: det,
      error,
      bits: m > 0 ? Math.log2(m / error) : error > 0 ? -Infinity : Infinity,
      typicalError: rb.typical + det,
      typicalBits: m > 0 ? Math.log2(m / (rb.typical + det)) : Infinity,
    });
    if (t.kind === 'ct') {
      // SEAL decrypts garbage once |value| * scale reaches half the modulus.
      const bits = Math.log2(m + error) + Math.log2(t.scale!);
      if (m + error > 0 && bits >= levelLog2Q[t.level!]! - 1) {
        overflows.push({ value: res.name, op: op.kind, level: t.level!, bits, modulusBits: levelLog2Q[t.level!]! });
      }
    }
  }

  function contributors(s: ErrorState): Contribution[] {
    const flat = new Map<number, number>();
    for (const [k, c] of s.flat) addInto(flat, termSource(k), c * c);
    const spikes = new Map<number, number>();
    for (const [k, t] of s.spike) addInto(spikes, termSource(k), Math.max(t.c, ...t.peaks) ** 2);
    const spikeTail = spikeBound(s.spike, profile, slots, [p / 2]).tails[0]!;
    const out: Contribution[] = [];
    for (const [src, v] of flat) out.push({ source: sources[src]!, error: tail * Math.sqrt(v) });
    for (const [src, v] of spikes) out.push({ source: sources[src]!, error: spikeTail * Math.sqrt(v) });
    if (s.foldedBy) for (const [src, c] of s.foldedBy) out.push({ source: sources[src]!, error: tail * c });
    for (const [src, d] of s.det) out.push({ source: sources[src]!, error: d });
    out.sort((a, b) => b.error - a.error);
    return out.slice(0, 5);
  }

  const shortfalls = outputs.filter((o) => !o.ok);
  return { values, outputs, shortfalls, overflows, assumedInputs, tail, ok: shortfalls.length === 0 && overflows.length === 0 };
}

const fmt = (x: number): string => (x === 0 ? '0' : Math.abs(x) >= 1e-3 && Math.abs(x) < 1e5 ? x.toPrecision(4) : x.toExponential(2));

function describeSource(s: NoiseSource): string {
  return s.key ? `${s.key} key (first at %${s.value})` : `%${s.value} = ${s.op} (${s.kind})`;
}

/** A readable summary: one line per output (bound, bits, requirement, main contributors), then problems. */
export function formatPrecisionReport(r: PrecisionReport): string {
  const lines: string[] = [];
  lines.push('| output | value | level | magnitude | error bound | bits | typical error | typical bits | needs | status | main error sources |');
  lines.push('|---|---|---:|---:|---:|---:|---:|---:|---|---|---|');
  for (const o of r.outputs) {
    const v = o.value;
    const req = o.requirement;
    const needs = req
      ? [req.absError !== undefined ? `<= ${fmt(req.absError)}` : '', req.bits !== undefined ? `>= ${req.bits} bits` : ''].filter(Boolean).join(', ')
      : '';
    const top = o.contributors.slice(0, 3).map((c) => `${describeSource(c.source)} ${fmt(c.error)}`).join('; ');
    lines.push(
      `| ${o.tensor} | %${v.name} = ${v.op} | ${v.level} | ${fmt(v.magnitude)} | ${fmt(v.error)} | ${v.bits.toFixed(1)} | ` +
        `${fmt(v.typicalError)} | ${v.typicalBits.toFixed(1)} | ${needs} | ${o.ok ? 'ok' : 'SHORT'} | ${top} |`,
    );
  }
  for (const o of r.shortfalls) {
    const v = o.value;
    const c = o.contributors[0];
    lines.push(
      `output ${o.tensor} falls short: %${v.name} = ${v.op} at level ${v.level} has error bound ${fmt(v.error)} (${v.bits.toFixed(1)} bits)` +
        (c ? `; most of it from ${describeSource(c.source)}` : ''),
    );
  }
  for (const o of r.overflows) {
    lines.push(`%${o.value} = ${o.op} at level ${o.level} overflows: 2^${o.bits.toFixed(1)} against a ${o.modulusBits.toFixed(1)}-bit modulus`);
  }
  if (r.assumedInputs.length) lines.push(`inputs assumed within [-1, 1]: ${r.assumedInputs.join(', ')}`);
  return lines.join('\n');
}
