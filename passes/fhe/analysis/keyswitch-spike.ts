// The key-switching "spike" of SEAL (measured on node-seal; not in ir/ckks/noise.ts): SEAL decomposes a
// ciphertext into digits in [0, q_j), not centred, so the mean digit q_j/2 times the key's error e_j
// leaves a fixed error (q_j / 2P) e_j (1 + X + ... + X^(N-1)) for every use of a key. In slot u (root
// zeta^(3^u)) the all-ones polynomial is 2 / (1 - zeta_u): large where 3^u mod 2N is near 0 or 2N (slot
// 0 first: about 2N/pi), so this error sits in a few slots. Its sd at the peak is
// sqrt(N sigma^2 / 2 sum_j (q_j/2P)^2) csc(pi / 2N) / scale (0.8-1.0x of measured). The precision pass
// (precision.ts) bounds it through its slot profile; the noise sampler (noise-sample.ts) draws it.

import { NOISE_SIGMA } from '../../../ir/ckks/noise.js';
import type { CkksParameters } from '../../../ir/ckks/params.js';

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
  /** The values of g outside the peaks, largest first. */
  restSorted: Float64Array;
}

const profiles = new Map<number, SpikeProfile>();
/** Peak slots tracked one by one (the profile falls off as 1/m^2 away from them). */
export const SPIKE_PEAKS = 16;

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
  const k = Math.min(SPIKE_PEAKS, slots);
  p = {
    g,
    peaks: order.slice(0, k).map((slot) => ({ slot, g: g[slot]! })),
    rest: k < slots ? g[order[k]!]! : 0,
    restSorted: Float64Array.from(order.slice(k), (u) => g[u]!),
  };
  profiles.set(ringDegree, p);
  return p;
}

/**
 * Per digit j (data prime q_j), the sd at the spike's peak that digit's key error contributes, times the
 * scale: sqrt(N sigma^2 / 2) (q_j / 2P) csc(pi / 2N). Digits are independent; a key switch at level l
 * uses digits 0..l.
 */
function spikeDigitAmplitudes(params: CkksParameters): number[] {
  const n = params.ringDegree;
  const special = Number(params.primes[params.primes.length - 1]!);
  const c = Math.sqrt(0.5 * n * NOISE_SIGMA * NOISE_SIGMA) / Math.sin(Math.PI / (2 * n));
  return params.primes.slice(0, -1).map((q) => (c * Number(q)) / (2 * special));
}

/** Standard deviation at the spike's peak for one key switch at `level` and `scale`. */
export function spikePeakSd(params: CkksParameters, level: number, scale: number): number {
  const a = spikeDigitAmplitudes(params);
  let s2 = 0;
  for (let j = 0; j <= level; j++) s2 += a[j]! ** 2;
  return Math.sqrt(s2) / scale;
}
