// The HE standard's 128-bit classical security bounds as SEAL enforces them (sec_level_type::tc128):
// the largest total coefficient modulus, in bits, for each ring degree.

export const TC128_MAX_BITS: Readonly<Record<number, number>> = {
  1024: 27,
  2048: 54,
  4096: 109,
  8192: 218,
  16384: 438,
  32768: 881,
};

export const RING_DEGREES = [1024, 2048, 4096, 8192, 16384, 32768] as const;

export function maxModulusBits(ringDegree: number): number | undefined {
  return TC128_MAX_BITS[ringDegree];
}

/** True when `totalBits` of modulus at ring degree N meets 128-bit security. */
export function isSecure128(ringDegree: number, totalBits: number): boolean {
  const max = maxModulusBits(ringDegree);
  return max !== undefined && totalBits <= max;
}
