// The one seeded Gaussian source of the project: xorshift32 uniforms and Box-Muller pairs. Small and
// reproducible (the same seed gives the same stream on every platform); used where a simulation or a
// sampled estimate must repeat exactly (the CKKS simulator's noise, the sampled precision analysis).
// Not for secrets: masks and keys come from the operating system's CSPRNG.

export class SeededGaussian {
  private s: number;
  private spare: number | undefined;

  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }

  /** Uniform in (0, 1). */
  uniform(): number {
    let x = this.s;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.s = x;
    return (x + 0.5) / 4294967296;
  }

  /** Standard normal. */
  next(): number {
    if (this.spare !== undefined) {
      const v = this.spare;
      this.spare = undefined;
      return v;
    }
    const r = Math.sqrt(-2 * Math.log(this.uniform()));
    const t = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(t);
    return r * Math.cos(t);
  }
}
