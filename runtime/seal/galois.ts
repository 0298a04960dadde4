// SEAL's slot rotations as permutations. A left rotation of the slots by `step` is the automorphism
// X -> X^g of the plaintext polynomial, g = 3^step mod 2N (SEAL's GaloisTool). On NTT-form words
// (each prime's N values in SEAL's bit-reversed order) it moves values without arithmetic: value i of the
// result is value table[i] of the operand, the table SEAL builds in GaloisTool::generate_table_ntt. So a
// party holding a polynomial in NTT form (the key holder's lifted refresh, the evaluator's unmask) can
// rotate it exactly, for the price of a copy; a ciphertext's rotation needs a key switch instead.

/** Galois element of a left rotation by `step` (SEAL: generator 3, modulo 2N; a negative step as slots + step). */
export function galoisElement(step: number, n: number): number {
  const slots = n / 2;
  const s = ((step % slots) + slots) % slots;
  let e = 1n;
  const m = BigInt(2 * n);
  let b = 3n;
  for (let k = s; k > 0; k >>= 1) {
    if (k & 1) e = (e * b) % m;
    b = (b * b) % m;
  }
  return Number(e);
}

function reverseBits(x: number, bits: number): number {
  let r = 0;
  for (let i = 0; i < bits; i++) {
    r = (r << 1) | (x & 1);
    x >>>= 1;
  }
  return r;
}

/** The NTT-domain permutation of the rotation by `step` at ring degree n: result[i] = operand[table[i]]. */
export function galoisNttTable(step: number, n: number): Uint32Array {
  const bits = Math.log2(n);
  if (!Number.isInteger(bits)) throw new RangeError(`ring degree ${n} is not a power of two`);
  const g = galoisElement(step, n);
  const mask = 2 * n - 1;
  const table = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    // Slot i holds the evaluation at psi^(2 bitrev(i) + 1); the automorphism takes it from psi^(g (2 bitrev(i) + 1)).
    const raw = (g * (2 * reverseBits(i, bits) + 1)) & mask;
    table[i] = reverseBits((raw - 1) >>> 1, bits);
  }
  return table;
}

const tables = new Map<string, Uint32Array>();

/** galoisNttTable, kept per ring degree and step (a decode step rotates by the same few steps again and again). */
function cachedTable(step: number, n: number): Uint32Array {
  const key = `${n}:${galoisElement(step, n)}`;
  let t = tables.get(key);
  if (!t) tables.set(key, (t = galoisNttTable(step, n)));
  return t;
}

/** NTT-form words (prime-major, n per prime) rotated by `step`, as SEAL would rotate their slots. */
export function rotateNttWords(words: BigUint64Array, n: number, step: number): BigUint64Array {
  if (words.length % n !== 0) throw new RangeError(`${words.length} words are not whole polynomials of ${n}`);
  const table = cachedTable(step, n);
  const out = new BigUint64Array(words.length);
  // Moved as pairs of 32-bit halves: the same bits, without a BigInt per word.
  const from = new Uint32Array(words.buffer, words.byteOffset, 2 * words.length);
  const to = new Uint32Array(out.buffer);
  for (let base = 0; base < words.length; base += n) {
    for (let i = 0; i < n; i++) {
      const src = 2 * (base + table[i]!);
      const dst = 2 * (base + i);
      to[dst] = from[src]!;
      to[dst + 1] = from[src + 1]!;
    }
  }
  return out;
}
