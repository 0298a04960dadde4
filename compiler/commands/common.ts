// Helpers shared by CLI verbs: --bind parsing, reading tensor JSON files, writing output.

import { weightCache } from '../../ir/weights/cache.js';
import * as fs from 'node:fs';
import { FhecError } from '../../ir/errors.js';
import { parseJsonText } from '../../ir/tensor-json.js';
import { DEFAULT_HIDING_BITS } from '../../runtime/refresh/mask.js';

/** Commander collector for repeatable `--bind name=value`. */
export function collectBinding(value: string, prev: Record<string, number>): Record<string, number> {
  const m = /^([^=]+)=(\d+)$/.exec(value);
  if (!m) throw new FhecError(`--bind expects name=value with a non-negative integer value, got '${value}'`);
  return { ...prev, [m[1]!.trim()]: Number(m[2]) };
}

/** Commander parser of an integer option >= min; the error names the flag (not a later derived one). */
export function intOption(flag: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\s*[-+]?\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n < min) throw new FhecError(`expects an integer >= ${min}, got '${v}'`, { field: flag });
    return n;
  };
}

/** Commander parser of a finite number option >= min. */
export function numberOption(flag: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min) throw new FhecError(`expects a number >= ${min}, got '${v}'`, { field: flag });
    return n;
  };
}

export function collectList(value: string, prev: string[]): string[] {
  return [...prev, value];
}

/** A file's text; a missing or unreadable file is a user error naming it. */
export function readTextFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FhecError(code === 'ENOENT' ? 'file not found' : `cannot read file (${code})`, { file });
  }
}

export function readJsonFile(file: string): unknown {
  return parseJsonText(readTextFile(file), file);
}

/** `--min-hiding-bits`: the floor on the refresh masks' statistical hiding, per ciphertext (both sides). */
export const MIN_HIDING_BITS_HELP =
  `fewest bits of statistical hiding per refreshed ciphertext the evaluator's masks and the key holder accept (default ${DEFAULT_HIDING_BITS}); ` +
  'lowering it runs plans whose refresh levels leave less room, and says so in every audit';

export function minHidingBitsOption(): (v: string) => number {
  return numberOption('--min-hiding-bits', 0);
}

/** The mask policy of a command's --min-hiding-bits (none: the default). */
export function maskFromFlags(minHidingBits: number | undefined): { mask?: { minHidingBits: number } } {
  return minHidingBits === undefined ? {} : { mask: { minHidingBits } };
}

/**
 * `--workers`: evaluation worker threads on seal (runtime/parallel/). Default 1: on model A 2 workers are
 * only 1.05x faster per decode token on its 2-level plan (1.15x on the 4-level plan before the floor
 * prime): the refresh rounds and one token's serial chains leave each worker idle much of a step, for a
 * second copy of the keys and plaintexts (README, Benchmarks).
 */
export const WORKERS_HELP = 'evaluation worker threads, each with its own SEAL instance and keys (seal backend; sim runs on one thread; default 1: 2 workers are 0.87-1.22x as fast per decode token of model A as one (bench runs; one worker also has the mask thread), for a second copy of the keys)';

export function workersOption(): (v: string) => number {
  return intOption('--workers', 1);
}

export const WEIGHT_MEMORY_HELP = 'plans compiled with --stream-weights: MiB of decoded weight blocks each thread keeps (least recently used dropped first; default 1024)';

/** --weight-memory MiB: the budget of this thread's weight cache (workers take it when they start). */
export function weightMemoryOption(): (v: string) => number {
  const parse = intOption('--weight-memory', 1);
  return (v: string) => {
    const mib = parse(v);
    weightCache.setBudget(mib * 2 ** 20);
    return mib;
  };
}

export function defaultWorkers(): number {
  return 1;
}

export const KEY_HOLDER_THREAD_HELP =
  'run the key holder\'s refresh rounds on the calling thread (seal; default: on a client thread of their own, which holds the secret key, while the evaluator makes the next round\'s refresh masks: decode 0.85x on the 2-core development machine, README Benchmarks)';

export const KEY_HOLDER_ROTATIONS_HELP =
  'have the key holder return the plan\'s rotations of each refresh result with the refresh instead of the evaluator rotating them (a key switch each): one more fresh ciphertext per rotation to the evaluator (seal, one evaluator thread; measured 0.99-1.03x per decode token on the 2-core development machine, where both sides share the cores: README Benchmarks)';

export const MASK_THREAD_HELP =
  'make the refresh masks (an encryption of each mask and its unmask) on the evaluator\'s thread instead of on a helper thread holding the public key only (seal, one evaluator thread; the helper is the default with 2 or more cores: same results, decode 0.88x on the 2-core development machine, README Benchmarks)';
