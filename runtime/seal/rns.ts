// Exact integer polynomials in and out of SEAL's residue (RNS) representation: what the coefficient-
// domain refresh needs to see a decrypted message as integers and to lift it to another modulus.

/** Residues of signed integer coefficients modulo each prime, prime-major (SEAL's layout). */
export function toResidues(coeffs: readonly bigint[], primes: readonly bigint[], n: number): BigUint64Array {
  const out = new BigUint64Array(primes.length * n);
  for (let j = 0; j < primes.length; j++) {
    const q = primes[j]!;
    for (let i = 0; i < n; i++) {
      const r = coeffs[i]! % q;
      out[j * n + i] = r < 0n ? r + q : r;
    }
  }
  return out;
}

/** The CRT lift of prime-major residues to integers in (-Q/2, Q/2]. */
export function fromResidues(words: BigUint64Array, primes: readonly bigint[], n: number): bigint[] {
  const Q = primes.reduce((a, q) => a * q, 1n);
  const half = Q / 2n;
  const parts = primes.map((q) => {
    const rest = Q / q;
    return { q, rest, inv: modInverse(rest % q, q) };
  });
  const out: bigint[] = new Array(n);
  for (let i = 0; i < n; i++) {
    let x = 0n;
    for (let j = 0; j < parts.length; j++) {
      const p = parts[j]!;
      x += ((words[j * n + i]! * p.inv) % p.q) * p.rest;
    }
    x %= Q;
    out[i] = x > half ? x - Q : x;
  }
  return out;
}

function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1] = [a, m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const t = r0 / r1;
    [r0, r1] = [r1, r0 - t * r1];
    [s0, s1] = [s1, s0 - t * s1];
  }
  if (r0 !== 1n) throw new Error('not invertible');
  return ((s0 % m) + m) % m;
}
