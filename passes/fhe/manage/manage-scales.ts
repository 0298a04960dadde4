// Scale and level management, in the spirit of EVA's waterline rescaling. Input: an unmanaged program
// (no levels, scales, rescales or relinearizations). Output: a managed program typed against a chain.
//
// Every ciphertext is kept in one of two forms at level l:
//   canonical: scale Delta_l (ir/fhe/scales.ts), or
//   pending:   scale Delta_l^2, a product waiting for its rescale (it lands exactly on Delta_{l-1}).
// Plaintexts are encoded at Delta_l for products and at the ciphertext's own scale for additions, so
// every product is pending and every rescale lands on a canonical scale: scales never mismatch.
// - rescale lazily: before a multiplication, rotation or output, and when an addition mixes forms;
//   sums of products are rescaled once (one rescale per sum, not per product);
// - relinearize lazily (sums of ct x ct products are relinearized once), but always before a rescale:
//   rescaling a size-3 ciphertext multiplies its rounding error by s^2 (measured: 100x the noise);
// - additions at different levels: the higher operand is mod-switched down and multiplied by 1 encoded
//   at the scale that makes it land on the other operand's scale (EVA's scale adjustment);
// - inputs start at level = program depth, so no value ever goes below level 0;
// - refresh (placed by passes/fhe/refresh-placement.ts) takes a rescaled, relinearized ciphertext
//   and gives it back canonical at the top level (scale Delta_top); depth counts again from there.
//   With `refreshProducts`, a ct x ct product whose only users are refreshes is refreshed as it is
//   (size 3, pending scale Delta_l^2 at level l): the key holder decrypts the third component for a
//   fraction of a key switch and its exact rescale to the target scale replaces the rounding one, so
//   the evaluator skips a relinearization and a rescale. Same headroom for the mask: Delta_l ~ q_l.
//   Its mask is a size-3 encryption that re-randomizes the third component too (runtime/seal/zero-encryptor.ts).

import { FhecError } from '../../../ir/errors.js';
import { FheBuilder } from '../../../ir/fhe/builder.js';
import { canonicalScales } from '../../../ir/fhe/scales.js';
import type { FheChain, FheOp, FheProgram, FheValue } from '../../../ir/fhe/types.js';
import { verifyFhe } from '../../../ir/fhe/verify.js';
import { multiplicativeDepth } from '../analysis/depth.js';

interface State {
  v: FheValue;
  pending: boolean;
}

export interface ManageOptions {
  chain: FheChain;
  /** Scale at the chain's top level (e.g. 2^40). */
  topScale: number;
  /** Level the inputs are encrypted at; default: the program's depth (the cheapest that fits). */
  inputLevel?: number;
  /**
   * Refresh ct x ct products unrelinearized and unrescaled when refreshes are their only users (see
   * above): at every level (true), none (false, the default), or the levels a rule accepts
   * (refresh-products.ts prices it).
   */
  refreshProducts?: boolean | ((level: number) => boolean);
  /** Filled with, for each managed op, the index of the source op whose management emitted it (reports attribute ops with it). */
  origins?: number[];
}

function nextUp(x: number, dir: number): number {
  const buf = new DataView(new ArrayBuffer(8));
  buf.setFloat64(0, x);
  buf.setBigUint64(0, buf.getBigUint64(0) + BigInt(dir));
  return buf.getFloat64(0);
}

/** A plaintext scale p with from * p === target exactly (SEAL multiplies scales as doubles). */
function exactFactor(from: number, target: number): number {
  const p0 = target / from;
  for (let k = 0; k <= 16; k++) {
    for (const dir of k === 0 ? [0] : [k, -k]) {
      const p = dir === 0 ? p0 : nextUp(p0, dir);
      if (from * p === target) return p;
    }
  }
  return p0;
}

export function manageScales(program: FheProgram, options: ManageOptions): FheProgram {
  if (program.chain) throw new FhecError('program is already managed');
  const { chain } = options;
  const top = chain.primes.length - 1;
  const depth = multiplicativeDepth(program);
  const inputLevel = options.inputLevel ?? depth;
  if (inputLevel > top) {
    throw new FhecError(`the program needs ${depth} levels but the modulus chain has only ${top}`);
  }
  if (inputLevel < depth) throw new FhecError(`inputs at level ${inputLevel} cannot feed a circuit of depth ${depth}`);
  const delta = canonicalScales(chain, options.topScale);
  const b = new FheBuilder(program.name, program.slots, chain);
  for (const c of program.constants.values()) b.constant(c.data, c.name);
  const one = b.constant({ kind: 'splat', value: 1 }, 'one');
  const state = new Map<string, State>();
  const constantOf = new Map<string, string>();
  const encodes = new Map<string, FheValue>();

  const encode = (constant: string, level: number, scale: number): FheValue => {
    const key = `${constant}@${level}@${scale}`;
    let v = encodes.get(key);
    if (!v) {
      v = b.encode(constant, { level, scale });
      encodes.set(key, v);
    }
    return v;
  };
  const levelOf = (s: State): number => s.v.type.level!;
  const eff = (s: State): number => levelOf(s) - (s.pending ? 1 : 0);
  const get = (a: FheValue): State => {
    const s = state.get(a.name);
    if (!s) throw new Error(`internal: no state for %${a.name}`);
    return s;
  };
  // Updates the shared state so later users reuse the rescaled/relinearized value.
  // Relinearizes first: rescaling a size-3 ciphertext rounds a third component that multiplies s^2,
  // about 100x more noise than a key switch at the (large) pending scale.
  const canonical = (name: string): State => {
    const s = state.get(name)!;
    if (!s.pending) return s;
    const v = s.v.type.kind === 'ct' && s.v.type.size === 3 ? b.relinearize(s.v) : s.v;
    const r: State = { v: b.rescale(v), pending: false };
    state.set(name, r);
    return r;
  };
  const relinearized = (name: string): State => {
    const s = state.get(name)!;
    if (s.v.type.kind === 'ct' && s.v.type.size === 3) {
      const r: State = { v: b.relinearize(s.v), pending: s.pending };
      state.set(name, r);
      return r;
    }
    return s;
  };
  /** Canonical value at level c brought to level e+1 in pending form (scale Delta_{e+1}^2). */
  const toPending = (s: State, e: number): State => {
    let v = s.v;
    while (v.type.level! > e + 1) v = b.modSwitch(v);
    const target = delta[e + 1]! * delta[e + 1]!;
    const p = exactFactor(v.type.scale!, target);
    return { v: b.mulPlain(v, encode(one, e + 1, p)), pending: true };
  };
  /** Canonical value brought down to canonical form at level e. */
  const drops = new Map<string, State>();
  const dropTo = (name: string, s: State, e: number): State => {
    if (levelOf(s) === e) return s;
    const key = `${name}@${e}`;
    let r = drops.get(key);
    if (!r) {
      const pend = toPending(s, e);
      const v = pend.v.type.kind === 'ct' && pend.v.type.size === 3 ? b.relinearize(pend.v) : pend.v;
      r = { v: b.rescale(v), pending: false };
      drops.set(key, r);
    }
    return r;
  };

  const addLike = (op: FheOp, a: FheValue, c: FheValue): State => {
    let x = get(a);
    let y = get(c);
    const e = Math.min(eff(x), eff(y));
    const bring = (name: string, s: State, other: State): State => {
      if (eff(s) === e) return s;
      const cs = canonical(name);
      if (other.pending) return toPending(cs, e);
      return dropTo(name, cs, e);
    };
    x = bring(a.name, x, y);
    y = bring(c.name, y, x);
    if (x.pending !== y.pending) {
      if (x.pending) x = canonical(a.name);
      else y = canonical(c.name);
      // canonical() may have updated the other name's state too if a === c; both now canonical.
    }
    const v = op.kind === 'add' ? b.add(x.v, y.v) : b.sub(x.v, y.v);
    return { v, pending: x.pending };
  };

  // Values whose every user is a refresh (refreshProducts).
  const onlyRefreshed = new Set<string>();
  const absorbAt = typeof options.refreshProducts === 'function' ? options.refreshProducts : () => options.refreshProducts === true;
  if (options.refreshProducts) {
    // Per value read by some op: whether every reader so far is a refresh.
    const refreshesOnly = new Map<string, boolean>();
    for (const op of program.ops) for (const a of op.args) refreshesOnly.set(a.name, (refreshesOnly.get(a.name) ?? true) && op.kind === 'refresh');
    for (const [name, only] of refreshesOnly) if (only) onlyRefreshed.add(name);
  }

  const origins = options.origins;
  if (origins) origins.length = 0;
  for (const [index, op] of program.ops.entries()) {
    if (origins) while (origins.length < b.opCount) origins.push(Math.max(0, index - 1));
    switch (op.kind) {
      case 'input': {
        const v = b.input(op.tensor!, op.layout!, { level: inputLevel, scale: delta[inputLevel]! }, op.result!.name);
        state.set(op.result!.name, { v, pending: false });
        break;
      }
      case 'encode':
        constantOf.set(op.result!.name, op.constant!);
        break;
      case 'output': {
        canonical(op.args[0]!.name);
        const s = relinearized(op.args[0]!.name);
        b.output(op.tensor!, s.v, op.layout!);
        break;
      }
      case 'add':
      case 'sub':
        state.set(op.result!.name, addLike(op, op.args[0]!, op.args[1]!));
        break;
      case 'negate': {
        const s = get(op.args[0]!);
        state.set(op.result!.name, { v: b.negate(s.v), pending: s.pending });
        break;
      }
      case 'add_plain': {
        const s = get(op.args[0]!);
        const c = constantOf.get(op.args[1]!.name)!;
        const p = encode(c, levelOf(s), s.v.type.scale!);
        state.set(op.result!.name, { v: b.addPlain(s.v, p), pending: s.pending });
        break;
      }
      case 'mul_plain': {
        const s = canonical(op.args[0]!.name);
        const c = constantOf.get(op.args[1]!.name)!;
        const l = levelOf(s);
        state.set(op.result!.name, { v: b.mulPlain(s.v, encode(c, l, delta[l]!)), pending: true });
        break;
      }
      case 'mul': {
        const [an, cn] = [op.args[0]!.name, op.args[1]!.name];
        canonical(an);
        canonical(cn);
        const e = Math.min(levelOf(state.get(an)!), levelOf(state.get(cn)!));
        const x = relinearizedAt(an, e);
        const y = relinearizedAt(cn, e);
        state.set(op.result!.name, { v: b.mul(x.v, y.v), pending: true });
        break;
      }
      case 'rotate': {
        canonical(op.args[0]!.name);
        const s = relinearized(op.args[0]!.name);
        state.set(op.result!.name, { v: b.rotate(s.v, op.step!), pending: false });
        break;
      }
      case 'refresh': {
        const raw = get(op.args[0]!);
        if (onlyRefreshed.has(op.args[0]!.name) && raw.pending && raw.v.type.kind === 'ct' && raw.v.type.size === 3 && absorbAt(levelOf(raw))) {
          state.set(op.result!.name, { v: b.refresh(raw.v, { level: top, scale: delta[top]! }, op.factor), pending: false });
          break;
        }
        // Refresh a rescaled, relinearized ciphertext; it comes back canonical at the top level.
        canonical(op.args[0]!.name);
        const s = relinearized(op.args[0]!.name);
        state.set(op.result!.name, { v: b.refresh(s.v, { level: top, scale: delta[top]! }, op.factor), pending: false });
        break;
      }
      default:
        throw new FhecError(`${op.kind} in an unmanaged program: the scale management pass places these itself`);
    }
  }

  // Relinearize after dropping (cheaper at the lower level); cached like the drop itself.
  function relinearizedAt(name: string, e: number): State {
    const s = state.get(name)!;
    if (levelOf(s) === e) return relinearized(name);
    let d = dropTo(name, s, e);
    if (d.v.type.kind === 'ct' && d.v.type.size === 3) {
      d = { v: b.relinearize(d.v), pending: false };
      drops.set(`${name}@${e}`, d);
    }
    return d;
  }

  if (origins) while (origins.length < b.opCount) origins.push(Math.max(0, program.ops.length - 1));
  const managed = b.build();
  verifyFhe(managed, { managed: true });
  return managed;
}
