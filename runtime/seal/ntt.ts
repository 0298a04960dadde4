// SEAL's NTT of bare polynomials, and NTT-form plaintexts from words. node-seal exposes the transform
// only on ciphertexts and plaintexts, so polynomials (residues prime-major at a level) travel through a
// ciphertext that holds two or three of them: SEAL transforms a ciphertext of any size, and refuses a
// "transparent" one with c1 = 0, so a lone polynomial is held twice. Grouping saves a load and a save
// per polynomial when a refresh round, or an encryption of zero, has several at one level.

import type { Evaluator, MainModule, Plaintext } from 'node-seal';
import { sealCall, type SealContextInfo } from './module.js';
import { buildCiphertextBytes, buildPlaintextBytes, checkCiphertextBytes, coefficientFormWords, type SealShape } from './serialized.js';

/** Group sizes for `count` polynomials: threes, with no group of one unless count is 1. */
function groups(count: number): number[] {
  if (count === 1) return [1];
  const out = new Array<number>(Math.floor(count / 3)).fill(3);
  const rest = count % 3;
  if (rest === 2) out.push(2);
  if (rest === 1) out.splice(out.length - 1, 1, 2, 2);
  return out;
}

/** SEAL's forward (`toNtt`) or inverse NTT of polynomials at `level`, in input order. */
export function sealNtt(seal: MainModule, info: SealContextInfo, shape: SealShape, ev: Evaluator, level: number, scale: number, polys: BigUint64Array[], toNtt: boolean): BigUint64Array[] {
  const n = shape.n;
  const k = level + 1;
  const out: BigUint64Array[] = [];
  let at = 0;
  for (const size of groups(polys.length)) {
    const held = size === 1 ? [polys[at]!, polys[at]!] : polys.slice(at, at + size);
    const all = new BigUint64Array(held.length * k * n);
    held.forEach((p, i) => all.set(p, i * k * n));
    const ct = new seal.Ciphertext();
    try {
      sealCall(seal, 'ciphertext load', () => ct.loadFromArray(info.context, buildCiphertextBytes({ parmsId: shape.levelIds[level]!, ntt: !toNtt, n, k, scale, words: all })));
      sealCall(seal, 'NTT', () => (toNtt ? ev.cipherTransformToNttInplace(ct) : ev.cipherTransformFromNttInplace(ct)));
      const saved = ct.saveToArray(seal.ComprModeType.none) as Uint8Array;
      const words = toNtt
        ? (() => {
            const c = checkCiphertextBytes(saved, shape, 'transformed polynomial', { sizes: [2, 3] });
            return new BigUint64Array(saved.slice(c.dataOffset, c.dataOffset + 8 * held.length * k * n).buffer);
          })()
        : coefficientFormWords(saved, shape).words;
      for (let i = 0; i < size; i++) out.push(words.slice(i * k * n, (i + 1) * k * n));
    } finally {
      ct.delete();
    }
    at += size;
  }
  return out;
}

/** sealNtt of every polynomial, each at its own level, grouped within a level; results in input order. */
export function sealNttByLevel(seal: MainModule, info: SealContextInfo, shape: SealShape, ev: Evaluator, polys: { level: number; scale: number; words: BigUint64Array }[], toNtt: boolean): BigUint64Array[] {
  const out = new Array<BigUint64Array>(polys.length);
  const byLevel = new Map<number, number[]>();
  polys.forEach((p, i) => {
    const g = byLevel.get(p.level);
    if (g) g.push(i);
    else byLevel.set(p.level, [i]);
  });
  for (const idx of byLevel.values()) {
    const first = polys[idx[0]!]!;
    const done = sealNtt(seal, info, shape, ev, first.level, first.scale, idx.map((i) => polys[i]!.words), toNtt);
    idx.forEach((i, j) => (out[i] = done[j]!));
  }
  return out;
}

/** An NTT-form plaintext at `level` holding the given NTT words. */
export function nttPlaintext(seal: MainModule, info: SealContextInfo, shape: SealShape, level: number, scale: number, words: BigUint64Array): Plaintext {
  const pt = new seal.Plaintext();
  try {
    sealCall(seal, 'plaintext load', () => pt.loadFromArray(info.context, buildPlaintextBytes({ parmsId: shape.levelIds[level]!, scale, words })));
  } catch (e) {
    pt.delete();
    throw e;
  }
  return pt;
}
