// The one interface both CKKS backends implement. The client holds the secret key: it makes the keys,
// encrypts and decrypts. The evaluator is built from the client's *public* material only (public,
// relinearization and Galois keys, serialized), so evaluation code never sees a secret key. Ciphertexts
// cross the boundary as bytes tagged with the parameters they belong to.

import type { CkksParameters } from '../ir/ckks/params.js';

export type BackendName = 'seal' | 'sim';

/**
 * Work for a thread while it waits on the key holder: what the next round needs (its encryptions of
 * zero), then optional work until `answered()` says the answer is in (a waiter that cannot tell passes
 * `() => true`: the optional work is then skipped).
 */
export type WhileWaiting = (answered: () => boolean) => void;

/** What keys the client has to make. */
export interface KeyRequest {
  /** Rotation steps that get their own Galois key. */
  galoisSteps: number[];
  relin: boolean;
}

/** Everything an evaluator may receive from a client: no secret key. */
export interface EvaluationKeys {
  backend: BackendName;
  parametersId: string;
  publicKey: Uint8Array;
  relinKeys?: Uint8Array;
  /**
   * With the relinearization keys: a size-3 encryption of zero (p0 + p1 s + p2 s^2 = e), the public key
   * that masks an unrelinearized product's refresh (runtime/seal/zero-encryptor.ts).
   */
  productKey?: Uint8Array;
  galoisKeys?: Uint8Array;
  galoisSteps: number[];
}

/** An evaluator-side ciphertext or plaintext; its content is private to the backend. */
export interface CkksHandle {
  readonly backend: BackendName;
}

export interface CkksClient {
  readonly params: CkksParameters;
  readonly backend: BackendName;
  /** Serialized evaluation keys for the evaluator. */
  evaluationKeys(): EvaluationKeys;
  /** Encrypts slot values (length <= slots) at a level and scale. */
  encrypt(values: ArrayLike<number>, level: number, scale: number): Uint8Array;
  decrypt(ciphertext: Uint8Array): Float64Array;
  /**
   * The key holder's half of a coefficient-masked refresh (runtime/refresh/mask.ts): checks the
   * request's mask against `target` (refusing one that hides too little), decrypts the masked
   * ciphertext to its exact integer polynomial y = m + r, stops with an error naming the refresh point
   * if |y| exceeds what an in-bound value allows, changes the scale (exact rounding), lifts y to the
   * target level's modulus and encrypts it there with the secret key. A whole round at once, so a
   * backend can share work between its items. Returns per item its fresh ciphertext, then one per
   * `target.rotations` step (the polynomial rotated, encrypted anew); a backend that cannot rotate
   * there refuses such items.
   */
  refreshExact(items: ExactRefreshItem[], whileWaiting?: WhileWaiting): Uint8Array[];
  /**
   * Runs refresh rounds on a thread of the client's own from now on (SEAL in Node): refreshExact given
   * `whileWaiting` posts the round, runs it on the calling thread, and waits (a round without stays on
   * the calling thread). Returns the thread's counters.
   */
  startRefreshThread?(): Promise<RefreshThreadStats>;
  /** Refresh replies so far whose encryption of zero was made between rounds (SEAL), on this thread. */
  repliesEncryptedAhead?(): number;
  /** Level, scale and polynomial count of a serialized ciphertext (the key holder checks them against the plan). */
  inspect(ciphertext: Uint8Array): { level: number; scale: number; size: number };
  /** The simulator's predicted error standard deviation per slot (undefined on real backends). */
  predictedError?(ciphertext: Uint8Array): Float64Array;
  dispose(): void;
}

/** What a client's refresh thread did: rounds, ciphertexts, its time on them, and the caller's time blocked for answers. */
export interface RefreshThreadStats {
  rounds: number;
  ciphertexts: number;
  ms: number;
  waitedMs: number;
  /** Replies whose encryption of zero the thread made between rounds. */
  repliesAhead: number;
}

/** One masked ciphertext of a refresh round and what it must come back as. */
export interface ExactRefreshItem {
  ciphertext: Uint8Array;
  target: ExactRefreshTarget;
}

/** N integer coefficients, any size below the modulus (runtime/refresh/integer-mask.ts makes them). */
export interface IntegerPolynomial {
  readonly n: number;
  /** Residues modulo each prime, prime-major (SEAL's layout). */
  residues(primes: readonly bigint[]): BigUint64Array;
  /** The coefficients as integers (one BigInt each: tests, and scale changes outside the word arithmetic). */
  coefficients(): bigint[];
}

/** An integer polynomial to add to a ciphertext's message (addIntegerPolynomials). */
export interface IntegerPolynomialItem {
  ct: CkksHandle;
  poly: IntegerPolynomial;
  /** Also add a fresh public-key encryption of zero, so the result's randomness is new (what the refresh mask sends out). */
  rerandomize?: boolean;
}

/** An integer polynomial at a level and scale, on its own (integerPlaintexts, encryptIntegerPolynomials). */
export interface IntegerPlaintextItem {
  level: number;
  scale: number;
  poly: IntegerPolynomial;
  /**
   * encryptIntegerPolynomials: 3 for the mask of an unrelinearized product, a size-3 encryption (with
   * the client's product key) that re-randomizes the third component too; default 2.
   */
  size?: number;
}

export interface ExactRefreshTarget {
  /** Level and scale of the fresh ciphertext. */
  level: number;
  scale: number;
  /** The refresh point (refreshed value's name), for errors. */
  point: string;
  /** Bound on |x| the mask was sized for, and the mask's k (W = 2^k B'). */
  bound: number;
  maskBits: number;
  /** The key holder's minimum hiding, bits per ciphertext. */
  minHidingBits: number;
  /** Left rotations of the fresh value to return as well, each right after it (refreshExact). */
  rotations?: number[];
}

export interface CkksEvaluator {
  readonly params: CkksParameters;
  readonly backend: BackendName;
  readonly simulated: boolean;
  loadCiphertext(bytes: Uint8Array): CkksHandle;
  saveCiphertext(ct: CkksHandle): Uint8Array;
  /** Encodes slot values (length <= slots; the rest are 0) at a level and scale. */
  encode(values: Float64Array, level: number, scale: number): CkksHandle;
  /**
   * Encodes the same value in every slot: the constant polynomial round(value * scale), built directly
   * (in NTT form it is that integer mod each prime in every position), no FFT. Optional: the executor
   * falls back to `encode`.
   */
  encodeSplat?(value: number, level: number, scale: number): CkksHandle;
  add(a: CkksHandle, b: CkksHandle): CkksHandle;
  sub(a: CkksHandle, b: CkksHandle): CkksHandle;
  negate(a: CkksHandle): CkksHandle;
  addPlain(a: CkksHandle, p: CkksHandle): CkksHandle;
  mulPlain(a: CkksHandle, p: CkksHandle): CkksHandle;
  mul(a: CkksHandle, b: CkksHandle): CkksHandle;
  relinearize(a: CkksHandle): CkksHandle;
  rescale(a: CkksHandle): CkksHandle;
  modSwitch(a: CkksHandle): CkksHandle;
  /**
   * The same ciphertext declared at another scale (a copy): the same integer polynomial, so its value
   * becomes value * scaleOf(a) / scale. A refresh with a factor sends its operand this way (maskedScale).
   */
  withScale(a: CkksHandle, scale: number): CkksHandle;
  /** Left rotation by `step` (slot i takes slot i+step), composed from the available keys if needed. */
  rotate(a: CkksHandle, step: number): CkksHandle;
  /**
   * A plaintext's slots rotated left by `step`, exactly (no key: a permutation of its NTT words), as a
   * new plaintext. The unmask of a refresh result the key holder returned rotated (refresher.ts).
   * Optional: without it the evaluator asks the key holder for no rotations.
   */
  rotatePlaintext?(p: CkksHandle, step: number): CkksHandle;
  /** The key switches `rotate(a, step)` makes: one per key step (its own key, or a decomposition over the keys held). */
  keyStepsFor?(step: number): number[];
  /**
   * Makes ahead the re-randomizing encryptions of zero that refreshes of ciphertexts at these levels
   * will use (one per entry, each used once), so that a thread with nothing else to do while the key
   * holder works makes them then instead of on the refresh's critical path. Returns how many it made
   * (the backend keeps a bounded number per level). Optional: a backend without it encrypts on demand.
   */
  prepareZeros?(levels: readonly number[]): number;
  /**
   * Adds each item's integer polynomial to its ciphertext's message, exactly, at the ciphertext's level
   * and scale (new ciphertexts; the inputs stay the caller's). Batched so a backend can transform
   * several polynomials together.
   */
  addIntegerPolynomials(items: IntegerPolynomialItem[]): CkksHandle[];
  /**
   * The two halves of addIntegerPolynomials made ahead, for a refresh whose level, scale and mask are
   * known before its ciphertext is (runtime/refresh/mask-stock.ts): plaintexts holding each polynomial
   * (added with addPlain), and fresh public-key encryptions of each polynomial (a zero plus it, added
   * with add). Optional: without them every mask is added when its ciphertext is ready.
   */
  integerPlaintexts?(items: IntegerPlaintextItem[]): CkksHandle[];
  encryptIntegerPolynomials?(items: IntegerPlaintextItem[]): CkksHandle[];
  levelOf(ct: CkksHandle): number;
  scaleOf(ct: CkksHandle): number;
  /** Polynomials in the ciphertext: 2, or 3 for an unrelinearized product. */
  sizeOf(ct: CkksHandle): number;
  /** The simulator only: the slot values a ciphertext carries (for the refresh audit; nothing is encrypted there). */
  simulatedValues?(ct: CkksHandle): Float64Array;
  /** With CkksEvaluatorOptions.maskSupply: the helper thread that makes refresh masks ahead (runtime/refresh/mask-stock.ts uses it). */
  readonly maskSupply?: MaskSupplier;
  /** With prepareZeros: zeros made ahead, and how many of them refreshes have used. */
  readonly preparedZerosStats?: { made: number; used: number };
  free(h: CkksHandle): void;
  dispose(): void;
}

/**
 * Brings a ciphertext back to the top level with the given scale, same slot values up to noise.
 * Backend-neutral: the client-aided protocol (runtime/refresh/) implements it on SEAL and the
 * simulator; a backend with a true CKKS bootstrap would implement it on the evaluator alone.
 */
export interface CkksRefresher {
  /** `name`: the refreshed value in the program, for per-value policies (e.g. calibrated bounds). */
  refresh(ct: CkksHandle, scale: number, name?: string): CkksHandle;
  /**
   * Refreshes several ciphertexts in one round trip (a refresh round, runtime/refresh/rounds.ts); same
   * results as one by one. `whileWaiting`: work for the evaluator's thread while the key holder answers
   * (a transport that blocks runs it between sending and blocking; one that answers at once ignores it).
   */
  refreshMany?(items: { ct: CkksHandle; scale: number; name?: string }[], whileWaiting?: WhileWaiting): CkksHandle[];
  /** refreshMany with a key holder that answers asynchronously; the evaluation workers' rounds use it when present. */
  refreshManyAsync?(items: { ct: CkksHandle; scale: number; name?: string }[]): Promise<CkksHandle[]>;
  /** Whether refreshRotated may be called: the key holder returns rotated copies of fresh values. */
  readonly rotatesOnKeyHolder?: boolean;
  /**
   * refreshMany where the key holder also returns each item's fresh value rotated by the steps of its
   * `rotations` (the plan's rotations of that refresh result, runtime/refresh/rounds.ts refreshRotations):
   * per item the fresh ciphertext, then one per step.
   */
  refreshRotated?(items: { ct: CkksHandle; scale: number; name?: string; rotations?: number[] }[], whileWaiting?: WhileWaiting): CkksHandle[][];
  /**
   * Makes ahead what masking the refreshes to come needs (runtime/refresh/mask-stock.ts), on a thread
   * that would otherwise wait for the key holder; returns how many it made. Optional.
   */
  prepare?(next: RefreshAhead[]): number;
}

/** A refresh to come, as the program types it: the value, its ciphertext's level and scale, the scale it comes back at. */
export interface RefreshAhead {
  name?: string;
  level: number;
  scale: number;
  toScale: number;
  /** Polynomials of the refreshed ciphertext (default 2; 3: an unrelinearized product). */
  size?: number;
}

export interface CkksBackend {
  readonly name: BackendName;
  /** True for the simulator: results are a model of CKKS, nothing is encrypted. */
  readonly simulated: boolean;
  /** One line to print with every output of this backend. */
  readonly label: string;
  createClient(params: CkksParameters, keys: KeyRequest): Promise<CkksClient>;
  createEvaluator(params: CkksParameters, keys: EvaluationKeys, options?: CkksEvaluatorOptions): Promise<CkksEvaluator>;
}

export interface CkksEvaluatorOptions {
  /**
   * Make the refresh masks ahead on a helper thread that holds the public key only
   * (runtime/seal/mask-supply.ts; SEAL in Node only, ignored elsewhere): same results, fewer ms of the
   * evaluator's thread per refresh.
   */
  maskSupply?: boolean;
}

/**
 * A refresh mask to make: r uniform over [-width, width] (fresh, from the OS CSPRNG), its public-key
 * encryption at `level` and `scale`, and the unmask -round(ratio r) at `toLevel` and `toScale`. `key`
 * names its shape (mask-stock.ts) and comes back with it.
 */
export interface MaskRequest {
  key: string;
  level: number;
  scale: number;
  width: bigint;
  toLevel: number;
  toScale: number;
  ratio: { num: bigint; den: bigint };
  /** 3: the mask of an unrelinearized product (a size-3 encryption with the product key); default 2. */
  size?: number;
}

/** A mask made ahead: Enc(r) (added to the ciphertext) and -round(rho r) as a plaintext (added to the reply). */
export interface SuppliedMask {
  key: string;
  masked: CkksHandle;
  unmask: CkksHandle;
}

/** Masks made off the evaluator's thread: asked for ahead, taken once arrived (never waited for). */
export interface MaskSupplier {
  request(items: MaskRequest[]): void;
  /** Every mask that has arrived since the last call, as this evaluator's handles (owned by the caller). */
  collect(): SuppliedMask[];
  /** Set once the supply has stopped (the evaluator then masks on its own thread). */
  readonly failed: string | undefined;
  readonly stats: { requested: number; delivered: number };
}
