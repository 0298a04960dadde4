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
//   Above maxTerms terms a value's smallest terms are folded into one new source (keyed like any
//   other, so x + x still doubles it and rotated copies still add in quadrature); what folding loses
//   is the correlation of those terms with the same terms inside other values.
// - the key-switching "spike" (keyswitch-spike.ts; measured on node-seal, not in noise.ts): a fixed
//   error for every use of a key, sitting in a few slots (about 50x the noise elsewhere at N=8192).
//   It is the same for every ciphertext switched with one key (equal keys add linearly) and is tracked
//   with its slot profile, per peak slot (a plaintext that is zero there removes it); outside the peaks
//   the terms at distinct offsets land on distinct slots of the profile (see spikeBound).
// - deterministic errors with worst-case bounds: the stated approximation errors, the rounding of
//   scalar (splat) plaintexts (the same in every slot, so it must not be treated as random), and the
//   second-order products of errors (dx * dy, from the operands' bounds).
//
// Tails: flat slot errors are not Gaussian. The dominant terms are products with the secret key (r s),
// and |s(zeta_u)|^2 varies from slot to slot like an exponential variable, which makes a slot error
// Laplace-distributed (kurtosis 6, measured): P(|X| > t sd) = exp(-sqrt(2) t). The spike is Gaussian
// (the key's error at one root) and concentrated in few slots. The bound is
//   tail_flat * sd_flat + tail_spike * sd_spike(worst slot) + deterministic,
// each tail union-bounded over the slots at failureProbability / 2.
//
// The typical error (an estimate of a run's largest slot error, not a bound) comes in two forms:
// - given the float64 values of the run (options.plainValues), the median over a few draws of the same
//   noise model propagated slot by slot (noise-sample.ts): products weigh each slot by its own values,
//   so it follows the real error through masks, diagonals and polynomials. On model A (two decoder
//   layers, about 10,000 ops) it is within about 1.5 bits of the error measured on SEAL at the
//   outputs, the residual stream and every approximation's output (test/precision-model.test.ts);
// - otherwise the analytic model with tails at probability 1/2. It carries the bound's max-times-max
//   scaling (a product scales by the other operand's largest slot, a matrix-vector product by each
//   diagonal's largest entry, a polynomial by the sum of its terms' worst cases), which compounds:
//   within 2 bits on single kernels (test/precision-seal.test.ts), about 9 bits high on model A's
//   first K/V projections and unbounded after its first softmax.
// The bound itself stays analytic (valid but for the folding caveat above), and is as loose: on model
// A it is finite up to the first attention's exp (10 bits below the measured precision at the first
// layer's K/V outputs) and infinite after it: a Chebyshev polynomial of degree 31 over [-39, 12]
// scales its input's error by the worst-case derivative at the top of the interval, far from the
// actual inputs, and second-order terms of such bounds overflow. Use the bound for kernels and small
// circuits, the sampled typical error for whole models.
//
// Magnitude bounds come from interval arithmetic on the inputs' bounds, tightened by per-value bounds
// the caller may give (from calibration, from a lowering's knowledge, or from a float64 run:
// magnitudeBoundsFromPlain). Interval arithmetic alone explodes on polynomial evaluations (|T_k| <= 1
// becomes 3, 19, ...), so per-value bounds matter there.

import { FhecError } from '../../../ir/errors.js';
import type { FheOp, FheOpKind, FheProgram } from '../../../ir/fhe/types.js';
import { constantValueAt } from '../../../ir/fhe/types.js';
import { constantSlots } from '../../../ir/fhe/layout.js';

import { encodeVariance, freshVariance, keySwitchVariance, refreshVariance, rescaleVariance } from '../../../ir/ckks/noise.js';
import { checkProgramChain, type CkksParameters } from '../../../ir/ckks/params.js';
import { evaluatePlain, maxAbs, type PlainEvaluation } from '../../../ir/fhe/plain-eval.js';
import { sampleErrors } from './noise-sample.js';
import { normalizeStep } from '../../../ir/ckks/rotation-keys.js';
import { SPIKE_PEAKS, spikePeakSd, spikeProfile, type SpikeProfile } from './keyswitch-spike.js';

/**
 * Slot values of diagonals built from referenced weights, kept for the mul_plain that uses them (an
 * encode's only user follows it closely); an older one is dropped, and its product's error spikes are
 * then not scaled down by the weights (a looser bound, never a tighter one).
 */
const BUILT_DIAGONALS_KEPT = 256;

export { spikeProfile, type SpikeProfile };

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
  /** Above this many tracked noise terms a value's smallest terms are folded into one new source. */
  maxTerms?: number;
  /**
   * float64 slot values of every value on the inputs the analysis is for (evaluatePlain of this
   * program). With them the typical error is a draw of the noise model propagated slot by slot
   * (noise-sample.ts) instead of the analytic estimate, and magnitudes default to their max |value|.
   */
  plainValues?: PlainEvaluation;
  /**
   * Draws of the noise model behind that estimate (default 7): the typical error is their median.
   * A key's spike is one Gaussian draw per key, so values it dominates vary from draw to draw (and
   * from key set to key set on SEAL).
   */
  sampleDraws?: number;
  /** Seed of the first draw (default 1; draw i uses seed + i). */
  sampleSeed?: number;
}

export type NoiseSourceKind = 'fresh' | 'encode' | 'rescale' | 'keyswitch' | 'keyswitch-spike' | 'approximation' | 'product' | 'refresh' | 'folded';

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
  /** Its parts: flat noise (every slot alike) and key-switching spikes (at their worst slot). */
  flatSd: number;
  spikeSd: number;
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
  /** How typicalError was estimated: a slot-by-slot draw on given values, or the analytic model. */
  typical: 'sampled' | 'analytic';
  ok: boolean;
}

/** Error state of one value. */
interface ErrorState {
  /** Noise with the same variance in every slot: key (source, offset) -> standard deviation. */
  flat: Map<number, number>;
  /** Key-switching spikes: key (source, offset) -> amplitudes (see SpikeTerm). */
  spike: Map<number, SpikeTerm>;
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
  /** Absent while every peak is at `c` (no plaintext has reshaped it yet). */
  peaks?: Float64Array;
}

const peaksOf = (t: SpikeTerm): Float64Array => t.peaks ?? new Float64Array(SPIKE_PEAKS).fill(t.c);
const spikeMax = (t: SpikeTerm): number => (t.peaks ? Math.max(t.c, ...t.peaks) : t.c);

function addSpike(m: Map<number, SpikeTerm>, k: number, t: SpikeTerm, f: number): void {
  const cur = m.get(k);
  if (!cur) {
    m.set(k, t.peaks ? { c: t.c * f, peaks: t.peaks.map((x) => x * f) } : { c: t.c * f });
    return;
  }
  if (cur.peaks || t.peaks) {
    const p = peaksOf(cur);
    const q = peaksOf(t);
    for (let i = 0; i < p.length; i++) p[i]! += q[i]! * f;
    cur.peaks = p;
  }
  cur.c += t.c * f;
}

// A term's key packs (source, offset) into one number (offsets < 2^17 slots): number keys keep the
// maps of a whole model's values cheap.
const OFFSETS = 2 ** 17;
const termKey = (source: number, offset: number): number => source * OFFSETS + offset;
const termSource = (key: number): number => Math.floor(key / OFFSETS);
const termOffset = (key: number): number => key % OFFSETS;

function emptyState(): ErrorState {
  return { flat: new Map(), spike: new Map(), det: new Map() };
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
  const moved = (k: number) => termKey(termSource(k), (((termOffset(k) + step) % slots) + slots) % slots);
  const flat = new Map<number, number>();
  for (const [k, c] of s.flat) addInto(flat, moved(k), c);
  const spike = new Map<number, SpikeTerm>();
  for (const [k, t] of s.spike) addSpike(spike, moved(k), t, 1);
  return { flat, spike, det: new Map(s.det), foldedBy: s.foldedBy && new Map(s.foldedBy) };
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
 * and only the candidate slots (where some peak lands) can carry the full variance. Outside the peaks,
 * the terms at distinct offsets land on distinct slots of the profile, so a slot carries at most
 * sum_i R_(i) g_(i), the largest per-offset weights paired with the largest non-peak values of g
 * (rearrangement inequality); summing every term at the largest non-peak g instead grows with the
 * number of offsets and, after a few thousand rotated copies, dwarfs everything else.
 */
function spikeBound(spike: Map<number, SpikeTerm>, profile: SpikeProfile, slots: number, ps: number[]): SpikeBound {
  if (spike.size === 0) return { variance: 0, tails: ps.map(() => 0) };
  // Variance per offset and peak (different sources at one offset are independent).
  const w = new Map<number, Float64Array>();
  const perOffset = new Map<number, number>();
  for (const [k, t] of spike) {
    const o = termOffset(k);
    let v = w.get(o);
    if (!v) w.set(o, (v = new Float64Array(profile.peaks.length)));
    for (let i = 0; i < v.length; i++) v[i]! += (t.peaks ? t.peaks[i]! : t.c) ** 2;
    perOffset.set(o, (perOffset.get(o) ?? 0) + t.c * t.c);
  }
  const weights = [...perOffset.values()].sort((a, b) => b - a);
  let rest = 0;
  for (let i = 0; i < weights.length && i < profile.restSorted.length; i++) rest += weights[i]! * profile.restSorted[i]!;
  // sum over terms of the variance at slot u: at most what the peaks landing on u carry, plus
  // `rest` for the others; it is largest where some peak lands: u = peak - o.
  // Each (offset, peak) pair puts its variance on exactly one slot.
  const candidates = new Map<number, number>();
  for (const [o, wo] of w) {
    profile.peaks.forEach((pk, i) => {
      const u = (((pk.slot - o) % slots) + slots) % slots;
      candidates.set(u, (candidates.get(u) ?? 0) + wo[i]! * pk.g);
    });
  }
  const byVariance = [...candidates.values()].sort((a, b) => b - a);
  const variance = (byVariance[0] ?? 0) + rest;
  // Smallest t whose union bound over the slots (Gaussian tails, each slot at its own variance) is <= p:
  // sum over candidates of e^(-t^2 V / (2 V_u)) + (other slots) e^(-t^2 V / (2 rest)). The largest
  // candidates are summed one by one, the others all at the variance of the last of those.
  const EXACT = 256;
  const exact = byVariance.slice(0, EXACT);
  const others = byVariance.length - exact.length;
  const otherV = (exact[exact.length - 1] ?? 0) + rest;
  const fails = (t: number) => {
    const t2 = t * t * variance;
    let f = rest > 0 ? slots * Math.exp(-t2 / (2 * rest)) : 0;
    for (const v of exact) f += Math.exp(-t2 / (2 * (v + rest)));
    if (others > 0) f += others * Math.exp(-t2 / (2 * otherV));
    return f;
  };
  const tails = ps.map((p) => {
    let lo = 0;
    let hi = 64;
    for (let i = 0; i < 50; i++) {
      const mid = (lo + hi) / 2;
      if (fails(mid) > p) lo = mid;
      else hi = mid;
    }
    return hi;
  });
  return { variance, tails };
}

/** Tail factor t with P(max over `slots` slot errors > t sd) <= p for Laplace-tailed slot errors. */
function laplaceTail(slots: number, p: number): number {
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
  checkProgramChain(program, params, 'precision analysis needs a managed program (run scale management first)');
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

function meetsRequirement(v: ValuePrecision, r: PrecisionRequirement | undefined): boolean {
  if (!r) return true;
  if (r.absError !== undefined && !(v.error <= r.absError)) return false;
  if (r.bits !== undefined && !(v.bits >= r.bits)) return false;
  return true;
}

export function analyzePrecision(program: FheProgram, options: PrecisionOptions): PrecisionReport {
  const { params } = options;
  checkParams(program, params);
  if (program.slots > OFFSETS) throw new FhecError(`precision analysis handles at most ${OFFSETS} slots, the program has ${program.slots}`);
  const n = params.ringDegree;
  const slots = program.slots;
  const special = params.primes[params.primes.length - 1]!;
  const p = options.failureProbability ?? 2 ** -20;
  const tail = laplaceTail(slots, p / 2);
  const maxTerms = options.maxTerms ?? 1000;
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
  const builtSlots: string[] = [];
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
      const peaks = peaksOf(t);
      profile.peaks.forEach((pk, i) => {
        const u = (((pk.slot - o) % slots) + slots) % slots;
        peaks[i]! *= Math.abs(u < values.length ? values[u]! : 0) / mw;
      });
      t.peaks = peaks;
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
  const randomBound = (s: ErrorState): { sd: number; flatSd: number; spikeSd: number; error: number; typical: number } => {
    let v = 0;
    for (const c of s.flat.values()) v += c * c;
    const flatSd = Math.sqrt(v);
    const sp = spikeBound(s.spike, profile, slots, [p / 2, 0.5]);
    const spikeSd = Math.sqrt(sp.variance);
    // Typical: the larger of the two parts' medians (they peak in different slots).
    const typical = Math.max(typicalTail * flatSd, sp.tails[1]! * spikeSd);
    return { sd: Math.hypot(flatSd, spikeSd), flatSd, spikeSd, error: tail * flatSd + sp.tails[0]! * spikeSd, typical };
  };
  const mag = (name: string): number => magnitude.get(name)!;
  const plainBounds = new Map<string, number>();
  if (options.plainValues && !options.valueBounds) for (const [k, v] of options.plainValues.values) plainBounds.set(k, maxAbs(v));
  const valueBounds = options.valueBounds ?? plainBounds;
  const plainValues = options.plainValues;
  const draws = plainValues
    ? Array.from({ length: Math.max(1, options.sampleDraws ?? 7) }, (_, i) =>
        sampleErrors(program, { params, plain: plainValues, seed: (options.sampleSeed ?? 1) + i, rotationKeySteps: options.rotationKeySteps }).max,
      )
    : undefined;
  const drawnTypical = (name: string): number | undefined => {
    if (!draws) return undefined;
    const xs = draws.map((d) => d.get(name)!).sort((a, b) => a - b);
    return xs.length % 2 ? xs[xs.length >> 1] : Math.sqrt(xs[xs.length / 2 - 1]! * xs[xs.length / 2]!);
  };
  /** Deterministic part due to stated approximation errors (the sampled draw has every other part). */
  const approxOf = (s: ErrorState): number => {
    let d = 0;
    for (const [k, c] of s.det) if (sources[k]!.kind === 'approximation') d += c;
    return d;
  };
  const bounded = (name: string, interval: number): number => {
    const given = valueBounds.get(name);
    return given !== undefined && given < interval ? given : interval;
  };
  const addFlat = (s: ErrorState, src: number, sd: number): void => addInto(s.flat, termKey(src, 0), sd);
  // Product of the two operands' errors, bounded by their tails, attributed to this op.
  const secondOrder = (x: string, y: string): number => boundOf(x) * boundOf(y);
  // Too many terms: the smallest are folded into one new source (at offset 0). The folded bundle keeps
  // its identity (x + x still doubles it; a rotated copy is a different, independent term), so sums of
  // rotations grow as sqrt(count) as they do without folding; what is lost is the correlation of the
  // folded terms with the same terms in other values (at most a factor sqrt(2) on a sum of two values
  // whose folded parts overlap).
  const fold = (s: ErrorState, op: FheOp): void => {
    if (s.flat.size + s.spike.size <= maxTerms) return;
    s.foldedBy ??= new Map();
    const keep = maxTerms >> 1;
    let v = 0;
    const flat = [...s.flat].sort((a, b) => b[1] - a[1]);
    for (const [k, c] of flat.slice(keep)) {
      v += c * c;
      addInto(s.foldedBy, termSource(k), c);
      s.flat.delete(k);
    }
    // Spikes sit in few slots, at different slots for different offsets: the folded ones become flat
    // noise with their largest per-slot variance (every slot gets the worst slot's: conservative).
    const spikes = [...s.spike].map(([k, t]) => [k, spikeMax(t)] as const).sort((a, b) => b[1] - a[1]);
    const folded = new Map<number, SpikeTerm>();
    for (const [k, c] of spikes.slice(keep)) {
      folded.set(k, s.spike.get(k)!);
      addInto(s.foldedBy, termSource(k), c);
      s.spike.delete(k);
    }
    if (folded.size) v += spikeBound(folded, profile, slots, []).variance;
    if (v > 0) addFlat(s, source(op, 'folded'), Math.sqrt(v));
  };
  const keySwitch = (s: ErrorState, op: FheOp, key: string, level: number, scale: number): void => {
    addFlat(s, source(op, 'keyswitch'), Math.sqrt(keySwitchVariance(n, params.primes.slice(0, level + 1), special, scale)));
    const a = spikePeakSd(params, level, scale);
    addSpike(s.spike, termKey(spikeSource(op, key), 0), { c: a }, 1);
  };

  // Error states are dropped after their last use: a whole model has thousands of values with
  // thousands of noise terms each.
  const lastUse = new Map<string, number>();
  program.ops.forEach((op, i) => op.args.forEach((a) => lastUse.set(a.name, i)));
  const release = (op: FheOp, i: number): void => {
    for (const a of op.args) if (lastUse.get(a.name) === i) states.delete(a.name);
  };

  for (const [opIndex, op] of program.ops.entries()) {
    const args = op.args;
    if (op.kind === 'output') {
      const name = args[0]!.name;
      const v = values.get(name)!;
      const requirement = requirementFor(options.required, op.tensor!);
      outputs.push({ tensor: op.tensor!, value: v, requirement, ok: meetsRequirement(v, requirement), contributors: contributors(state(name)) });
      release(op, opIndex);
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
          // A diagonal that references a weight is built from it here; only the latest few are kept.
          const built = c.data.kind === 'diagonal' ? constantSlots(c.data, slots, c.name) : undefined;
          if (w === undefined) {
            w = 0;
            if (built) for (const v of built) w = Math.max(w, Math.abs(v));
            else for (let i = 0; i < slots; i++) w = Math.max(w, Math.abs(constantValueAt(c.data, i)));
            plainMax.set(c.name, w);
          }
          m = w;
          if (c.data.kind === 'dense') plainSlots.set(res.name, c.data.values);
          if (built) {
            plainSlots.set(res.name, built);
            builtSlots.push(res.name);
            if (builtSlots.length > BUILT_DIAGONALS_KEPT) plainSlots.delete(builtSlots.shift()!);
          }
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
        // mod_switch drops a prime: exact. The error state is shared (states are never changed once
        // made), unless an approximation error is added here.
        s = options.approximationErrors?.has(res.name) ? combine(state(args[0]!.name), 1, undefined, 0) : state(args[0]!.name);
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
        // A folded constant (refresh-fold.ts) multiplies the value and its error so far.
        s = combine(state(args[0]!.name), op.factor ?? 1, undefined, 0);
        addFlat(s, source(op, 'refresh'), Math.sqrt(refreshVariance(n, t.scale!)));
        m = Math.abs(op.factor ?? 1) * mag(args[0]!.name);
        break;
      }
    }
    const approx = options.approximationErrors?.get(res.name);
    if (approx !== undefined) addInto(s.det, source(op, 'approximation'), Math.abs(approx));
    fold(s, op);
    m = bounded(res.name, m);
    states.set(res.name, s);
    release(op, opIndex);
    magnitude.set(res.name, m);
    const rb = randomBound(s);
    const sd = rb.sd;
    const det = detOf(s);
    const error = rb.error + det;
    const drawn = drawnTypical(res.name);
    const typical = drawn !== undefined ? drawn + approxOf(s) : rb.typical + det;
    values.set(res.name, {
      name: res.name,
      op: op.kind,
      level: t.level!,
      scale: t.scale!,
      magnitude: m,
      sd,
      flatSd: rb.flatSd,
      spikeSd: rb.spikeSd,
      deterministic: det,
      error,
      bits: m > 0 ? Math.log2(m / error) : error > 0 ? -Infinity : Infinity,
      typicalError: typical,
      typicalBits: m > 0 ? Math.log2(m / typical) : Infinity,
    });
    if (!lastUse.has(res.name)) states.delete(res.name);
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
    // A folded source is attributed to the sources it folded (foldedBy).
    for (const [k, c] of s.flat) if (sources[termSource(k)]!.kind !== 'folded') addInto(flat, termSource(k), c * c);
    const spikes = new Map<number, number>();
    for (const [k, t] of s.spike) addInto(spikes, termSource(k), spikeMax(t) ** 2);
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
  return { values, outputs, shortfalls, overflows, assumedInputs, tail, typical: draws ? 'sampled' : 'analytic', ok: shortfalls.length === 0 && overflows.length === 0 };
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

