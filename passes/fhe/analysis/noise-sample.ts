// One draw of the CKKS error model, propagated slot by slot through a managed program: the typical
// error of every value on given inputs. The precision pass (precision.ts) tracks the same noise model
// analytically with one magnitude per value, which is what a bound needs but compounds: a product is
// scaled by the other operand's largest slot, a matrix-vector product by each diagonal's largest entry,
// a polynomial by the sum of its terms' worst cases. On a whole transformer that puts the estimate tens
// of bits above the real error. Here every value carries a slot vector of errors instead, drawn from
// the model and propagated with the float64 values of the same run (ir/fhe/plain-eval.ts), so products,
// masks, diagonals and polynomials weigh each slot by its own value and signs cancel as they do in
// SEAL; its largest slot is a draw of the run's largest error, not a bound.
//
// The draw (variances from ir/ckks/noise.ts and keyswitch-spike.ts):
// - rounding after rescale, fresh encryption and refresh is dominated by a product with the secret s:
//   in slot u its variance is proportional to |s(zeta_u)|^2, one exponential weight per slot shared by
//   every such error (this is what makes slot errors Laplace-tailed, and the same slots worst everywhere);
// - key switching: SEAL's digit of the 60-bit first prime times the key's error e dominates, so the
//   variance in slot u follows |e(zeta_u)|^2, a weight per key; the same e gives the key's spike
//   (keyswitch-spike.ts), a fixed error for every use of the key, drawn once per key;
// - dense plaintext encodings: independent Gaussian rounding per slot; scalar (splat) plaintexts: one
//   rounding shared by all slots;
// - products: x dy + y dx + dx dy with the float64 values x, y of the run (exact for the model).

import { SeededGaussian } from '../../../ir/random.js';
import { FhecError } from '../../../ir/errors.js';
import type { FheProgram } from '../../../ir/fhe/types.js';
import type { PlainEvaluation } from '../../../ir/fhe/plain-eval.js';
import { encodeVariance, freshVariance, keySwitchVariance, refreshVariance, rescaleVariance } from '../../../ir/ckks/noise.js';
import type { CkksParameters } from '../../../ir/ckks/params.js';
import { normalizeStep } from '../../../ir/ckks/rotation-keys.js';
import { spikePeakSd, spikeProfile } from './keyswitch-spike.js';

export interface NoiseSampleOptions {
  params: CkksParameters;
  /** float64 slot values of every value of the program on the inputs (evaluatePlain). */
  plain: PlainEvaluation;
  /** Seed of the draw (default 1). */
  seed?: number;
  /** The Galois key steps a rotation by `step` applies, in order (default: its own key). */
  rotationKeySteps?: (step: number) => number[];
}

export interface SampledErrors {
  /** Largest |error| over the slots, by value (ciphertexts and plaintexts). */
  max: Map<string, number>;
  /** Root mean square of the error over the slots, by value. */
  rms: Map<string, number>;
}

export function sampleErrors(program: FheProgram, options: NoiseSampleOptions): SampledErrors {
  const { params, plain } = options;
  if (!program.chain) throw new FhecError('noise sampling needs a managed program (run scale management first)');
  const n = params.ringDegree;
  const slots = program.slots;
  const special = params.primes[params.primes.length - 1]!;
  const keySteps = options.rotationKeySteps ?? ((step: number) => [normalizeStep(step, slots)]);
  const rng = new SeededGaussian(options.seed ?? 1);
  const g = spikeProfile(n).g;
  const sqrtG = g.map(Math.sqrt);

  // |s(zeta_u)|^2 for the secret, and per key |e(zeta_u)|^2 with the spike's standard pattern: the
  // real part of the key's error at the root, turned by the phase of 2 / (1 - zeta_u), which is close
  // to i near the peaks, so the spike takes the imaginary part (unit variance after sqrt 2).
  const secretWeight = new Float64Array(slots);
  for (let u = 0; u < slots; u++) secretWeight[u] = (rng.next() ** 2 + rng.next() ** 2) / 2;
  const keys = new Map<string, { weight: Float64Array; spike: Float64Array }>();
  const keyOf = (name: string) => {
    let k = keys.get(name);
    if (!k) {
      const weight = new Float64Array(slots);
      const spike = new Float64Array(slots);
      for (let u = 0; u < slots; u++) {
        const re = rng.next();
        const im = rng.next();
        weight[u] = (re * re + im * im) / 2;
        spike[u] = im * sqrtG[u]!;
      }
      keys.set(name, (k = { weight, spike }));
    }
    return k;
  };
  const secretNoise = (e: Float64Array, variance: number) => {
    const sd = Math.sqrt(variance);
    for (let u = 0; u < slots; u++) e[u]! += sd * Math.sqrt(secretWeight[u]!) * rng.next();
  };
  const keySwitch = (e: Float64Array, key: string, level: number, scale: number) => {
    const k = keyOf(key);
    const rounding = rescaleVariance(n, scale);
    const digits = Math.sqrt(Math.max(0, keySwitchVariance(n, params.primes.slice(0, level + 1), special, scale) - rounding));
    const r = Math.sqrt(rounding);
    const a = spikePeakSd(params, level, scale);
    for (let u = 0; u < slots; u++) {
      e[u]! += r * Math.sqrt(secretWeight[u]!) * rng.next() + digits * Math.sqrt(k.weight[u]!) * rng.next() + a * k.spike[u]!;
    }
  };

  const errors = new Map<string, Float64Array>();
  const max = new Map<string, number>();
  const rms = new Map<string, number>();
  const lastUse = new Map<string, number>();
  program.ops.forEach((op, i) => op.args.forEach((a) => lastUse.set(a.name, i)));
  const err = (name: string) => {
    const e = errors.get(name);
    if (!e) throw new FhecError(`%${name} is used before it is defined`);
    return e;
  };
  const val = (name: string) => {
    const v = plain.values.get(name);
    if (!v) throw new FhecError(`no float64 value for %${name}: the evaluation is of another program`);
    return v;
  };

  program.ops.forEach((op, i) => {
    if (op.kind === 'output') return;
    const res = op.result!;
    const t = res.type;
    const [a, b] = op.args.map((x) => x.name);
    let e: Float64Array;
    switch (op.kind) {
      case 'input':
        e = new Float64Array(slots);
        secretNoise(e, freshVariance(n, t.scale!));
        break;
      case 'encode': {
        const c = program.constants.get(op.constant!);
        if (!c) throw new FhecError(`unknown constant @${op.constant}`);
        if (c.data.kind === 'splat') {
          // One rounded coefficient, the same in every slot.
          e = new Float64Array(slots).fill((rng.uniform() - 0.5) / t.scale!);
        } else {
          e = new Float64Array(slots);
          const sd = Math.sqrt(encodeVariance(n, t.scale!));
          for (let u = 0; u < slots; u++) e[u] = sd * rng.next();
        }
        break;
      }
      case 'add':
      case 'add_plain': {
        const [x, y] = [err(a!), err(b!)];
        e = new Float64Array(slots);
        for (let u = 0; u < slots; u++) e[u] = x[u]! + y[u]!;
        break;
      }
      case 'sub': {
        const [x, y] = [err(a!), err(b!)];
        e = new Float64Array(slots);
        for (let u = 0; u < slots; u++) e[u] = x[u]! - y[u]!;
        break;
      }
      case 'negate':
        e = err(a!).map((x) => -x);
        break;
      case 'mul':
      case 'mul_plain': {
        const [dx, dy, x, y] = [err(a!), err(b!), val(a!), val(b!)];
        e = new Float64Array(slots);
        for (let u = 0; u < slots; u++) e[u] = x[u]! * dy[u]! + y[u]! * dx[u]! + dx[u]! * dy[u]!;
        break;
      }
      case 'mod_switch':
        e = Float64Array.from(err(a!));
        break;
      case 'relinearize':
        e = Float64Array.from(err(a!));
        keySwitch(e, 'relin', t.level!, t.scale!);
        break;
      case 'rotate': {
        e = err(a!);
        for (const k of keySteps(op.step!)) {
          const s = ((k % slots) + slots) % slots;
          const r = new Float64Array(slots);
          for (let u = 0; u < slots; u++) r[u] = e[(u + s) % slots]!;
          keySwitch(r, `galois ${normalizeStep(k, slots)}`, t.level!, t.scale!);
          e = r;
        }
        if (e === err(a!)) e = Float64Array.from(e);
        break;
      }
      case 'rescale': {
        e = Float64Array.from(err(a!));
        const size = op.args[0]!.type.kind === 'ct' ? op.args[0]!.type.size : 2;
        secretNoise(e, rescaleVariance(n, t.scale!, size));
        break;
      }
      case 'refresh':
        // The key holder decrypts (the error stays, with the mask encryption's) and encrypts afresh.
        e = Float64Array.from(err(a!), (x) => x * (op.factor ?? 1));
        secretNoise(e, refreshVariance(n, t.scale!));
        break;
    }
    let m = 0;
    let s2 = 0;
    for (let u = 0; u < slots; u++) {
      const x = Math.abs(e[u]!);
      if (x > m) m = x;
      s2 += x * x;
    }
    max.set(res.name, m);
    rms.set(res.name, Math.sqrt(s2 / slots));
    if (lastUse.has(res.name)) errors.set(res.name, e);
    for (const x of op.args) if (lastUse.get(x.name) === i) errors.delete(x.name);
  });
  return { max, rms };
}
