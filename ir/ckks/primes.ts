// The primes SEAL's CoeffModulus::Create picks, computed here so the compiler can type scales exactly
// (every rescale divides by a known prime) without loading SEAL. Same algorithm as SEAL 4.1:
// for each bit size, the largest primes p = 1 mod 2N below 2^bits, handed out from the smallest.

const WITNESSES = [2n, 3n, 5n, 7n, 11n, 13n, 17n, 19n, 23n, 29n, 31n, 37n];

function modPow(base: bigint, exp: bigint, mod: bigint): bigint {
  let r = 1n;
  let b = base % mod;
  let e = exp;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % mod;
    b = (b * b) % mod;
    e >>= 1n;
  }
  return r;
}

/** Deterministic Miller-Rabin; exact for n < 3.3e24 (all 64-bit values). */
export function isPrime(n: bigint): boolean {
  if (n < 2n) return false;
  for (const p of WITNESSES) {
    if (n === p) return true;
    if (n % p === 0n) return false;
  }
  let d = n - 1n;
  let s = 0;
  while ((d & 1n) === 0n) {
    d >>= 1n;
    s++;
  }
  outer: for (const a of WITNESSES) {
    let x = modPow(a, d, n);
    if (x === 1n || x === n - 1n) continue;
    for (let i = 1; i < s; i++) {
      x = (x * x) % n;
      if (x === n - 1n) continue outer;
    }
    return false;
  }
  return true;
}

/** SEAL's get_primes: `count` primes = 1 mod factor below 2^bits, largest first. */
function primesBelow(factor: bigint, bits: number, count: number): bigint[] {
  const out: bigint[] = [];
  let value = (((1n << BigInt(bits)) - 1n) / factor) * factor + 1n;
  const lower = 1n << BigInt(bits - 1);
  while (out.length < count && value > lower) {
    if (isPrime(value)) out.push(value);
    value -= factor;
  }
  if (out.length < count) throw new Error(`not enough ${bits}-bit primes for this ring degree`);
  return out;
}

const cache = new Map<string, bigint[]>();

/** The primes CoeffModulus.Create(ringDegree, bitSizes) returns, in the same order. */
export function coeffModulusPrimes(ringDegree: number, bitSizes: readonly number[]): bigint[] {
  const key = `${ringDegree}:${bitSizes.join(',')}`;
  const hit = cache.get(key);
  if (hit) return [...hit];
  const counts = new Map<number, number>();
  for (const b of bitSizes) counts.set(b, (counts.get(b) ?? 0) + 1);
  const table = new Map<number, bigint[]>();
  for (const [bits, count] of counts) table.set(bits, primesBelow(2n * BigInt(ringDegree), bits, count));
  // SEAL takes from the back of each list, so the first occurrence of a size gets its smallest prime.
  const result = bitSizes.map((b) => table.get(b)!.pop()!);
  cache.set(key, result);
  return [...result];
}
