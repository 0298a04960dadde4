// Typing rules of the FHE IR: the result type of each op from its operand types, with the checks SEAL
// itself makes (same level, same scale, scale within the modulus, size 2 where a key switch happens).
// Shared by the builder (which infers types) and the verifier (which recomputes and compares them).

import { FhecError } from '../errors.js';
import { chainBitsAt, scalesClose, type CtType, type FheChain, type FheOp, type FheType, type PtType } from './types.js';

function fail(op: FheOp, message: string): never {
  const at = op.result ? `%${op.result.name} = ${op.kind}` : op.kind;
  throw new FhecError(message, { node: at });
}

function known(t: FheType): boolean {
  return t.level !== undefined && t.scale !== undefined;
}

function expectCt(op: FheOp, t: FheType | undefined, what: string): CtType {
  if (!t || t.kind !== 'ct') fail(op, `${what} must be a ciphertext`);
  return t;
}

function expectPt(op: FheOp, t: FheType | undefined, what: string): PtType {
  if (!t || t.kind !== 'pt') fail(op, `${what} must be a plaintext`);
  return t;
}

function sameLevelAndScale(op: FheOp, a: FheType, b: FheType): void {
  if (!known(a) || !known(b)) return;
  if (a.level !== b.level) fail(op, `level mismatch: ${a.level} vs ${b.level}`);
  if (!scalesClose(a.scale!, b.scale!)) fail(op, `scale mismatch: ${a.scale} vs ${b.scale}`);
}

function checkLevel(op: FheOp, level: number | undefined, chain: FheChain | undefined): void {
  if (level === undefined) return;
  if (!Number.isInteger(level) || level < 0) fail(op, `level ${level} is below 0`);
  if (chain && level >= chain.primes.length) fail(op, `level ${level} is above the top level ${chain.primes.length - 1}`);
}

function checkProductScale(op: FheOp, level: number | undefined, scale: number | undefined, chain?: FheChain): void {
  if (level === undefined || scale === undefined || !chain) return;
  // SEAL: floor(log2(scale)) must stay below the bit count of the current modulus.
  if (!(scale > 0) || Math.floor(Math.log2(scale)) >= chainBitsAt(chain, level)) {
    fail(op, `scale out of bounds: 2^${Math.log2(scale).toFixed(2)} at level ${level} (${chainBitsAt(chain, level)} modulus bits)`);
  }
}

/** Result type of `op` given its operands' types; throws FhecError on an ill-typed op. */
export function inferResultType(op: FheOp, chain: FheChain | undefined, declared?: FheType): FheType | undefined {
  const [a, b] = op.args.map((v) => v.type);
  const ct = (level: number | undefined, scale: number | undefined, size: number): CtType =>
    level === undefined || scale === undefined ? { kind: 'ct', size } : { kind: 'ct', level, scale, size };
  switch (op.kind) {
    case 'input': {
      if (op.args.length !== 0) fail(op, 'input takes no operands');
      if (!op.tensor || !op.layout) fail(op, 'input needs a tensor name and a layout');
      const d = declared as CtType | undefined;
      if (!d || d.kind !== 'ct') fail(op, 'input must declare a ciphertext type');
      if (d.size !== 2) fail(op, 'input ciphertexts have size 2');
      checkLevel(op, d.level, chain);
      return d;
    }
    case 'output': {
      if (op.args.length !== 1) fail(op, 'output takes one operand');
      const x = expectCt(op, a, 'output operand');
      if (known(x) && x.size !== 2) fail(op, 'output needs a relinearized (size 2) ciphertext');
      if (!op.tensor || !op.layout) fail(op, 'output needs a tensor name and a layout');
      return undefined;
    }
    case 'encode': {
      if (op.args.length !== 0) fail(op, 'encode takes no operands');
      if (!op.constant) fail(op, 'encode needs a constant');
      const d = declared as PtType | undefined;
      if (!d || d.kind !== 'pt') fail(op, 'encode must declare a plaintext type');
      checkLevel(op, d.level, chain);
      if (chain && d.scale !== undefined) {
        const top = chain.primes.length - 1;
        // SEAL's encoder: floor(log2(scale)) + 1 must stay below the bit count of the top modulus.
        if (!(d.scale > 0) || Math.floor(Math.log2(d.scale)) + 1 >= chainBitsAt(chain, top)) {
          fail(op, `encode scale out of bounds: 2^${Math.log2(d.scale).toFixed(2)}`);
        }
      }
      return d;
    }
    case 'add':
    case 'sub': {
      const x = expectCt(op, a, 'left operand');
      const y = expectCt(op, b, 'right operand');
      sameLevelAndScale(op, x, y);
      return ct(x.level, x.scale, Math.max(x.size, y.size));
    }
    case 'negate': {
      const x = expectCt(op, a, 'operand');
      return ct(x.level, x.scale, x.size);
    }
    case 'add_plain': {
      const x = expectCt(op, a, 'left operand');
      const p = expectPt(op, b, 'right operand');
      sameLevelAndScale(op, x, p);
      return ct(x.level, x.scale, x.size);
    }
    case 'mul_plain': {
      const x = expectCt(op, a, 'left operand');
      const p = expectPt(op, b, 'right operand');
      if (known(x) && known(p) && x.level !== p.level) fail(op, `level mismatch: ${x.level} vs ${p.level}`);
      const scale = known(x) && known(p) ? x.scale! * p.scale! : undefined;
      checkProductScale(op, x.level, scale, chain);
      return ct(known(p) ? x.level : undefined, scale, x.size);
    }
    case 'mul': {
      const x = expectCt(op, a, 'left operand');
      const y = expectCt(op, b, 'right operand');
      // Unmanaged programs leave relinearization to the management pass: sizes do not matter there.
      if (!known(x) || !known(y)) return ct(undefined, undefined, 2);
      if (x.size !== 2 || y.size !== 2) fail(op, 'ct x ct multiply needs relinearized (size 2) operands');
      if (known(x) && known(y) && x.level !== y.level) fail(op, `level mismatch: ${x.level} vs ${y.level}`);
      const scale = known(x) && known(y) ? x.scale! * y.scale! : undefined;
      checkProductScale(op, x.level, scale, chain);
      return ct(x.level, scale, 3);
    }
    case 'relinearize': {
      const x = expectCt(op, a, 'operand');
      if (x.size !== 3) fail(op, 'relinearize needs a size-3 ciphertext');
      return ct(x.level, x.scale, 2);
    }
    case 'rescale': {
      const x = expectCt(op, a, 'operand');
      if (!known(x)) return ct(undefined, undefined, x.size);
      if (x.level! < 1) fail(op, 'rescale at level 0: no prime left to divide by');
      if (!chain) fail(op, 'rescale in a program without a modulus chain');
      // SEAL: new scale = scale / (double) q_level.
      return ct(x.level! - 1, x.scale! / Number(chain.primes[x.level!]!), x.size);
    }
    case 'mod_switch': {
      const x = expectCt(op, a, 'operand');
      if (!known(x)) return ct(undefined, undefined, x.size);
      if (x.level! < 1) fail(op, 'mod_switch at level 0');
      return ct(x.level! - 1, x.scale, x.size);
    }
    case 'rotate': {
      const x = expectCt(op, a, 'operand');
      if (known(x) && x.size !== 2) fail(op, 'rotate needs a relinearized (size 2) ciphertext');
      if (op.step === undefined || !Number.isInteger(op.step) || op.step === 0) fail(op, 'rotate needs a non-zero integer step');
      return ct(x.level, x.scale, 2);
    }
    case 'refresh': {
      const x = expectCt(op, a, 'operand');
      const d = declared as CtType | undefined;
      if (!d || d.kind !== 'ct') return ct(undefined, undefined, x.size);
      checkLevel(op, d.level, chain);
      return d;
    }
  }
}
