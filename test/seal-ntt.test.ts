// SEAL's NTT of bare polynomials through ciphertexts of two or three (runtime/seal/ntt.ts): any count
// comes back in order, each transformed as it would be alone, and the inverse gives the input back.

import { describe, expect, it } from 'vitest';
import { makeParameters } from '../ir/ckks/params.js';
import { loadSeal, makeSealContext, sealShape } from '../runtime/seal/module.js';
import { sealNtt } from '../runtime/seal/ntt.js';
import { smallResidues } from '../runtime/seal/small-polynomials.js';

describe('sealNtt', () => {
  it('transforms 1 to 7 polynomials in groups, each as it would be alone, and back', async () => {
    const params = makeParameters({ ringDegree: 4096, bitSizes: [40, 30, 40], scale: 2 ** 30, insecure: true });
    const seal = await loadSeal();
    const info = makeSealContext(seal, params);
    const shape = sealShape(info, params);
    const ev = new seal.Evaluator(info.context);
    const level = 1;
    const primes = shape.primes.slice(0, level + 1);
    const poly = (k: number) => smallResidues(Int8Array.from({ length: shape.n }, (_, i) => ((i * (k + 3) * 2654435761) % 41) - 20), primes);
    const alone = [0, 1, 2, 3, 4, 5, 6].map((k) => sealNtt(seal, info, shape, ev, level, 1, [poly(k)], true)[0]!);
    expect(Array.from(alone[0]!.subarray(0, 8))).not.toEqual(Array.from(poly(0).subarray(0, 8)));
    for (let count = 1; count <= 7; count++) {
      const input = Array.from({ length: count }, (_, k) => poly(k));
      const out = sealNtt(seal, info, shape, ev, level, 1, input, true);
      expect(out.length).toBe(count);
      out.forEach((w, k) => expect(w.every((x, i) => x === alone[k]![i]), `count ${count}, polynomial ${k}`).toBe(true));
      const back = sealNtt(seal, info, shape, ev, level, 1, out, false);
      back.forEach((w, k) => expect(w.every((x, i) => x === input[k]![i]), `count ${count}, polynomial ${k} back`).toBe(true));
    }
    ev.delete();
    info.context.delete();
  });
});
