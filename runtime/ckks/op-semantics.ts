// What each FHE op of a managed program does on a CkksEvaluator: the one implementation of the ops'
// semantics (input level and scale checks, constant encoding with NTT splats and the plaintext cache,
// refresh rounds and the check of what a refresh gives back). Every executor runs ops through here:
// ProgramRuntime (executeProgram and the modules `fhec compile --emit ts` writes for plans) and the
// evaluation workers (runtime/parallel/); they differ only in how they order ops and hold values.

import { FhecError } from '../../ir/errors.js';
import { constantSlots } from '../../ir/fhe/layout.js';
import { maskedScale, type FheOp, type FheProgram } from '../../ir/fhe/types.js';
import { verifyFhe } from '../../ir/fhe/verify.js';
import { checkProgramChain } from '../../ir/ckks/params.js';
import type { CkksEvaluator, CkksHandle, CkksRefresher, RefreshAhead, WhileWaiting } from '../backend.js';
import { constantKeys, type PlaintextCache } from './plaintext-cache.js';
import { redeclareForFactors } from '../refresh/redeclare.js';

/** The program is managed, well formed, and typed for the evaluator's modulus chain. */
export function checkRunnable(program: FheProgram, ev: CkksEvaluator): void {
  checkProgramChain(program, ev.params, 'program is not managed (no modulus chain); run the scale management pass first');
  verifyFhe(program, { managed: true });
}

/** Runs `f` for `op`; an FhecError without a node gets the op's. */
export function withOpContext<T>(op: FheOp, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof FhecError && !e.where.node) throw new FhecError(e.message, { ...e.where, node: op.result ? `%${op.result.name} = ${op.kind}` : op.kind });
    throw e;
  }
}

/**
 * Encodes a program's constants on one evaluator: splats built directly where the backend can
 * (encodeSplat), dense constants through the plaintext cache when one is given.
 */
export function constantEncoder(program: FheProgram, ev: CkksEvaluator, cache?: PlaintextCache): (op: FheOp) => CkksHandle {
  cache?.beginRun(program);
  const keys = cache ? constantKeys(program) : undefined;
  return (op) => {
    const c = program.constants.get(op.constant!)!;
    const t = op.result!.type;
    if (c.data.kind === 'splat' && ev.encodeSplat) return ev.encodeSplat(c.data.value, t.level!, t.scale!);
    const values = () => constantSlots(c.data, program.slots, c.name);
    const key = keys?.get(c.name);
    return key ? cache!.encode(key, t.level!, t.scale!, values) : ev.encode(values(), t.level!, t.scale!);
  };
}

/** Runs one op other than `refresh` (refreshes go by rounds: refreshRound). */
export function runOp(
  op: FheOp,
  ev: CkksEvaluator,
  inputs: Map<string, Uint8Array>,
  get: (name: string) => CkksHandle,
  encode: (op: FheOp) => CkksHandle,
  outputs: Map<string, Uint8Array>,
): CkksHandle | undefined {
  const a = op.args[0] ? get(op.args[0].name) : undefined;
  const b = op.args[1] ? get(op.args[1].name) : undefined;
  switch (op.kind) {
    case 'input': {
      const bytes = inputs.get(op.tensor!);
      if (!bytes) throw new FhecError(`no ciphertext given for input "${op.tensor}"`);
      const ct = ev.loadCiphertext(bytes);
      const t = op.result!.type;
      if (ev.levelOf(ct) !== t.level) throw new FhecError(`input "${op.tensor}" is at level ${ev.levelOf(ct)}, the program expects ${t.level}`);
      if (ev.scaleOf(ct) !== t.scale) throw new FhecError(`input "${op.tensor}" has scale ${ev.scaleOf(ct)}, the program expects ${t.scale}`);
      return ct;
    }
    case 'output':
      outputs.set(op.tensor!, ev.saveCiphertext(a!));
      return undefined;
    case 'encode':
      return encode(op);
    case 'add':
      return ev.add(a!, b!);
    case 'sub':
      return ev.sub(a!, b!);
    case 'negate':
      return ev.negate(a!);
    case 'add_plain':
      return ev.addPlain(a!, b!);
    case 'mul_plain':
      return ev.mulPlain(a!, b!);
    case 'mul':
      return ev.mul(a!, b!);
    case 'relinearize':
      return ev.relinearize(a!);
    case 'rescale':
      return ev.rescale(a!);
    case 'mod_switch':
      return ev.modSwitch(a!);
    case 'rotate':
      return ev.rotate(a!, op.step!);
    case 'refresh':
      throw new Error('internal: refreshes run by rounds (refreshRound)');
  }
}

/**
 * One refresh round: all its ciphertexts in one message when the refresher batches, each checked against
 * the program's type. `rotations` (refresh op index -> steps; only with a refresher that rotatesOnKeyHolder):
 * the key holder also returns those rotations of the fresh values, in `rotated` (per refresh, one per step).
 */
export function refreshRound(
  program: FheProgram,
  refreshes: number[],
  ev: CkksEvaluator,
  get: (name: string) => CkksHandle,
  refresher: CkksRefresher | undefined,
  whileWaiting?: WhileWaiting,
  rotations?: ReadonlyMap<number, number[]>,
): { fresh: CkksHandle[]; rotated: CkksHandle[][] } {
  const ops = refreshes.map((i) => program.ops[i]!);
  if (!refresher) throw new FhecError('the program refreshes ciphertexts, and no refresher (key holder round trip or bootstrap) was given', { node: `%${ops[0]!.result!.name} = refresh` });
  const { items, free } = refreshItems(ops, ev, get);
  try {
    if (rotations && refresher.refreshRotated && refreshes.some((i) => rotations.has(i))) {
      const out = refresher.refreshRotated(items.map((it, k) => ({ ...it, rotations: rotations.get(refreshes[k]!) ?? [] })), whileWaiting);
      const fresh = out.map((o) => o[0]!);
      const rotated = out.map((o) => o.slice(1));
      const bad = rotated.findIndex((r, k) => r.some((h) => ev.levelOf(h) !== ev.levelOf(fresh[k]!) || ev.scaleOf(h) !== ev.scaleOf(fresh[k]!)));
      if (bad >= 0) {
        out.flat().forEach((h) => ev.free(h));
        throw new FhecError('a rotated refresh result is not at its fresh value\'s level and scale', { node: `%${ops[bad]!.result!.name} = refresh` });
      }
      try {
        return { fresh: checkRefreshed(ops, ev, fresh), rotated };
      } catch (e) {
        rotated.flat().forEach((h) => ev.free(h));
        throw e;
      }
    }
    const fresh = refresher.refreshMany ? refresher.refreshMany(items, whileWaiting) : items.map((it) => refresher.refresh(it.ct, it.scale, it.name));
    return { fresh: checkRefreshed(ops, ev, fresh), rotated: ops.map(() => []) };
  } finally {
    free();
  }
}

/** refreshRound through the refresher's asynchronous path when it has one (a key holder across a network). */
export async function refreshRoundAsync(program: FheProgram, refreshes: number[], ev: CkksEvaluator, get: (name: string) => CkksHandle, refresher: CkksRefresher | undefined): Promise<CkksHandle[]> {
  if (!refresher?.refreshManyAsync) return refreshRound(program, refreshes, ev, get, refresher).fresh;
  const ops = refreshes.map((i) => program.ops[i]!);
  const { items, free } = refreshItems(ops, ev, get);
  try {
    return checkRefreshed(ops, ev, await refresher.refreshManyAsync(items));
  } finally {
    free();
  }
}

/**
 * What the refresher is given for each refresh op: the ciphertext, the scale it must come back at, the
 * value's name. A refresh with a factor gets a copy declared at its masked scale (redeclareForFactors); free()
 * releases those copies.
 */
function refreshItems(ops: FheOp[], ev: CkksEvaluator, get: (name: string) => CkksHandle): { items: { ct: CkksHandle; scale: number; name: string }[]; free: () => void } {
  const { cts, free } = redeclareForFactors(ev, ops.map((op) => ({ ct: get(op.args[0]!.name), factor: op.factor })));
  return { items: ops.map((op, k) => ({ ct: cts[k]!, scale: op.result!.type.scale!, name: op.args[0]!.name })), free };
}

/** The refreshes of a round as the program types them, for masks made ahead; undefined when a type lacks its level or scale. */
export function refreshesAhead(program: FheProgram, refreshes: number[]): RefreshAhead[] | undefined {
  const out: RefreshAhead[] = [];
  for (const i of refreshes) {
    const op = program.ops[i]!;
    const t = op.args[0]!.type;
    const toScale = op.result?.type.scale;
    if (t.level === undefined || t.scale === undefined || toScale === undefined) return undefined;
    out.push({ name: op.args[0]!.name, level: t.level, scale: maskedScale(op), toScale, ...(t.kind === 'ct' && t.size === 3 ? { size: 3 } : {}) });
  }
  return out;
}

/** Each fresh ciphertext at the level and scale its refresh op promises; all are freed on a mismatch. */
function checkRefreshed(ops: FheOp[], ev: CkksEvaluator, fresh: CkksHandle[]): CkksHandle[] {
  const bad = ops.findIndex((op, k) => ev.levelOf(fresh[k]!) !== op.result!.type.level || ev.scaleOf(fresh[k]!) !== op.result!.type.scale);
  if (bad >= 0) {
    const t = ops[bad]!.result!.type;
    const [level, scale] = [ev.levelOf(fresh[bad]!), ev.scaleOf(fresh[bad]!)];
    fresh.forEach((h) => ev.free(h));
    throw new FhecError(`refresh gave level ${level} and scale ${scale}, the program expects ${t.level} and ${t.scale}`, { node: `%${ops[bad]!.result!.name} = refresh` });
  }
  return fresh;
}
