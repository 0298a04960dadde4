// The one seeded Gaussian source of the project: xorshift32 uniforms and Marsaglia's polar method
// (normals in pairs, no trigonometry: about twice as fast as Box-Muller, which mattered because the CKKS
// simulator draws a normal per slot for every noisy op). Small and reproducible (the same seed gives the
// same stream on every platform); used where a simulation or a sampled estimate must repeat exactly (the
// CKKS simulator's noise, the sampled precision analysis). Not for secrets: masks and keys come from the
// operating system's CSPRNG.

/** One xorshift32 step. */
function xorshift(s: number): number {
  s ^= s << 13;
  s >>>= 0;
  s ^= s >>> 17;
  s ^= s << 5;
  return s >>> 0;
}

export class SeededGaussian {
  private s: number;
  private spare: number | undefined;

  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }

  /** Uniform in (0, 1). */
  uniform(): number {
    this.s = xorshift(this.s);
    return (this.s + 0.5) / 4294967296;
  }

  /** Standard normal. */
  next(): number {
    if (this.spare !== undefined) {
      const v = this.spare;
      this.spare = undefined;
      return v;
    }
    const [a, b] = this.pair();
    this.spare = b;
    return a;
  }

  /**
   * values[i] += sd * (a standard normal), for every i: the same stream as calling next() once per slot,
   * with the generator's state in a local (the simulator's hot loop).
   */
  addTo(values: Float64Array, sd: number): void {
    let i = 0;
    if (this.spare !== undefined && values.length > 0) {
      values[i++]! += sd * this.spare;
      this.spare = undefined;
    }
    let s = this.s;
    while (i < values.length) {
      let x: number;
      let y: number;
      let q: number;
      do {
        s = xorshift(s);
        x = (2 * (s + 0.5)) / 4294967296 - 1;
        s = xorshift(s);
        y = (2 * (s + 0.5)) / 4294967296 - 1;
        q = x * x + y * y;
      } while (q >= 1);
      const f = Math.sqrt((-2 * Math.log(q)) / q);
      values[i++]! += sd * (x * f);
      if (i < values.length) values[i++]! += sd * (y * f);
      else this.spare = y * f;
    }
    this.s = s;
  }

  /** Two independent standard normals (polar method: a uniform point in the unit disc, rejected outside it). */
  private pair(): [number, number] {
    for (;;) {
      const x = 2 * this.uniform() - 1;
      const y = 2 * this.uniform() - 1;
      const q = x * x + y * y;
      if (q < 1) {
        const f = Math.sqrt((-2 * Math.log(q)) / q);
        return [x * f, y * f];
      }
    }
  }
}
