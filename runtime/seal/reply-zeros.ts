// The key holder's encryptions of zero for its refresh replies, made while it waits for the next round.
//
// A reply is the lifted polynomial m encrypted with the secret key. SEAL encrypts a plaintext by making
// a fresh encryption of zero (c1 uniform from a seed, c0 = -c1 s + e, e through the NTT) and adding m to
// c0; the zero depends on nothing in the round. So the key holder makes zeros between rounds, while the
// evaluator computes and the key holder's thread would otherwise idle, and a round only adds m's NTT
// words to c0 of one: the same ciphertext, with the same distribution, as SEAL's encryptSymmetric of m,
// each zero used once. They stay seeded as SEAL saves them (c1 travels as its 64-byte seed).
//
// How many to keep: per target level, the most one round has asked for so far (a decode step repeats its
// rounds), at most MAX_AHEAD_PER_LEVEL. A round with too few ready makes the rest on the spot.

/** Most zeros kept per level: ~0.4 MiB each at N = 16384 with 3 primes. */
export const MAX_AHEAD_PER_LEVEL = 64;

export interface ReplyZeroStats {
  /** Zeros made between rounds. */
  madeAhead: number;
  /** Replies that used one of them (the rest were encrypted during their round). */
  usedAhead: number;
}

/**
 * Runs `f` once the event loop is free (Node's setImmediate, else a timer). Kept referenced: with only
 * unreferenced immediates pending, Node lets the loop block in its poll phase until the next message, so
 * a key holder's thread made one or two zeros per round instead of filling its stock between rounds. The
 * refill stops by itself once the stock is full (and at stop()), so it keeps no process alive for long.
 */
function whenIdle(f: () => void): void {
  const g = globalThis as { setImmediate?: (f: () => void) => unknown; setTimeout: (f: () => void, ms: number) => unknown };
  if (g.setImmediate) g.setImmediate(f);
  else g.setTimeout(f, 0);
}

export class ReplyZeros {
  readonly stats: ReplyZeroStats = { madeAhead: 0, usedAhead: 0 };
  private readonly stock = new Map<number, Uint8Array[]>();
  private readonly wanted = new Map<number, number>();
  private scheduled = false;
  private stopped = false;

  /** `make(level)`: a fresh seeded encryption of zero at `level`, serialized. */
  constructor(private readonly make: (level: number) => Uint8Array) {}

  /** A zero at `level` for one reply: made ahead if one is ready, else now. */
  take(level: number): Uint8Array {
    const ready = this.stock.get(level)?.pop();
    if (ready) {
      this.stats.usedAhead++;
      return ready;
    }
    return this.make(level);
  }

  /** After a round with replies at `levels`: learn how many to keep, and refill once the thread is idle. */
  roundDone(levels: readonly number[]): void {
    const counts = new Map<number, number>();
    for (const l of levels) counts.set(l, (counts.get(l) ?? 0) + 1);
    for (const [l, c] of counts) this.wanted.set(l, Math.min(MAX_AHEAD_PER_LEVEL, Math.max(c, this.wanted.get(l) ?? 0)));
    this.refillWhenIdle();
  }

  /** Ready zeros at `level` (tests). */
  ready(level: number): number {
    return this.stock.get(level)?.length ?? 0;
  }

  stop(): void {
    this.stopped = true;
    this.stock.clear();
  }

  private short(): number | undefined {
    for (const [l, w] of this.wanted) if ((this.stock.get(l)?.length ?? 0) < w) return l;
    return undefined;
  }

  // One zero per turn of the event loop, so a round that arrives meanwhile waits for one zero at most.
  private refillWhenIdle(): void {
    if (this.scheduled || this.stopped || this.short() === undefined) return;
    this.scheduled = true;
    whenIdle(() => {
      this.scheduled = false;
      const level = this.stopped ? undefined : this.short();
      if (level === undefined) return;
      try {
        const z = this.make(level);
        const list = this.stock.get(level);
        if (list) list.push(z);
        else this.stock.set(level, [z]);
        this.stats.madeAhead++;
      } catch {
        // A failing encryption fails again, and visibly, when a round makes its own.
        return this.stop();
      }
      this.refillWhenIdle();
    });
  }
}
