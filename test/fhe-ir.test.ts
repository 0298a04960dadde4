import { describe, expect, it } from 'vitest';
import { FhecError } from '../ir/errors.js';
import { FheBuilder, parseFhe, printFhe, verifyFhe, canonicalScales, type FheChain } from '../ir/fhe/index.js';

const layout = { length: 4, tokens: 1, stride: 8, period: 4, copies: 2 };
// Real SEAL primes for N=8192, [60, 40, 40] data primes.
const chain: FheChain = { ringDegree: 16, primes: [1152921504606748673n, 1099510890497n, 1099511480321n] };

function managedExample() {
  const delta = canonicalScales(chain, 2 ** 40);
  const b = new FheBuilder('ex', 8, chain);
  const w = b.constant({ kind: 'dense', values: Float64Array.from([0.1, -0, 1e-300, -2.5e10, 1 / 3]) }, 'w');
  const one = b.constant({ kind: 'splat', value: 1 });
  const x = b.input('x', layout, { level: 2, scale: delta[2]! });
  const p = b.encode(w, { level: 2, scale: delta[2]! });
  const y = b.mulPlain(x, p);
  const sq = b.mul(x, x);
  const s = b.add(y, sq);
  const r = b.rescale(b.relinearize(s));
  const rot = b.rotate(r, 3);
  const pr = b.encode(one, { level: 1, scale: rot.type.scale! });
  const z = b.addPlain(b.negate(rot), pr);
  const low = b.modSwitch(z);
  b.output('y', low, { length: 4, tokens: 1, stride: 8, period: 8, copies: 1 });
  return b.build();
}

describe('FHE IR', () => {
  it('infers types with SEAL scale arithmetic', () => {
    const p = managedExample();
    const delta = canonicalScales(chain, 2 ** 40);
    const byKind = (k: string) => p.ops.find((o) => o.kind === k)!.result!.type;
    expect(byKind('mul_plain')).toEqual({ kind: 'ct', level: 2, scale: delta[2]! * delta[2]!, size: 2 });
    expect(byKind('mul')).toEqual({ kind: 'ct', level: 2, scale: delta[2]! * delta[2]!, size: 3 });
    // rescale divides by q_2 exactly as SEAL: the canonical scale of level 1.
    expect(byKind('rescale')).toEqual({ kind: 'ct', level: 1, scale: delta[1], size: 2 });
    expect(delta[1]).toBe((2 ** 40 * 2 ** 40) / Number(chain.primes[2]));
    expect(byKind('mod_switch').level).toBe(0);
  });

  it('prints and parses back to the same program, bit for bit', () => {
    const p = managedExample();
    const text = printFhe(p);
    const q = parseFhe(text);
    expect(printFhe(q)).toBe(text);
    expect(q.chain).toEqual(p.chain);
    const w = q.constants.get('w')!.data;
    expect(w.kind).toBe('dense');
    if (w.kind === 'dense') {
      expect(Object.is(w.values[1], -0)).toBe(true);
      expect(w.values[2]).toBe(1e-300);
      expect(w.values[4]).toBe(1 / 3);
    }
    expect(q.ops.map((o) => o.kind)).toEqual(p.ops.map((o) => o.kind));
    expect(q.ops.map((o) => o.result?.type)).toEqual(p.ops.map((o) => o.result?.type));
  });

  it('a refresh with a factor prints as `times`, parses back exactly, and only a refresh may carry a positive finite one', () => {
    const delta = canonicalScales(chain, 2 ** 40);
    const b = new FheBuilder('fold', 8, chain);
    const x = b.input('x', layout, { level: 1, scale: delta[1]! });
    const t = b.refresh(x, { level: 2, scale: delta[2]! }, 1 / 3);
    b.output('y', t, layout);
    const text = printFhe(b.build());
    expect(text).toContain(`refresh %${x.name} times ${1 / 3}`);
    const q = parseFhe(text);
    expect(q.ops.find((o) => o.kind === 'refresh')!.factor).toBe(1 / 3);
    expect(printFhe(q)).toBe(text);
    expect(() => parseFhe(text.replace(`refresh %${x.name} times`, `rescale %${x.name} times`))).toThrow(/only refresh takes a factor/);
    expect(() => parseFhe(text.replace(`times ${1 / 3}`, 'times 0'))).toThrow(/not a positive finite number/);
    expect(() => parseFhe(text.replace(`times ${1 / 3}`, 'times -2'))).toThrow(/not a positive finite number/);
  });

  it('round-trips unmanaged programs', () => {
    const b = new FheBuilder('u', 8);
    const x = b.input('x', layout);
    const y = b.mulConst(b.rotate(x, -2), { kind: 'splat', value: 0.5 });
    b.output('y', b.add(y, x), layout);
    const text = printFhe(b.build());
    expect(text).toContain('ct<?>');
    expect(printFhe(parseFhe(text))).toBe(text);
  });

  const header = `fhe.program @t slots=8 {
  chain N=16 primes=[1152921504606748673, 1099510890497, 1099511480321]
  const @c = splat 2
  %x = input "x" layout(4, 1, 8, 4, 2) : ct<2, 1099511627776>
  %y = input "y" layout(4, 1, 8, 4, 2) : ct<1, 1099511627776>
`;
  const bad: [string, string, RegExp][] = [
    ['level mismatch', '  %z = add %x, %y : ct<2, 1099511627776>\n', /level mismatch/],
    ['scale mismatch', '  %p = encode @c : pt<2, 1099511627777>\n  %z = add_plain %x, %p : ct<2, 1099511627776>\n', /scale mismatch/],
    ['wrong declared scale', '  %z = rescale %x : ct<1, 1099511627776>\n', /declared type/],
    ['rescale at level 0', '  %a = mod_switch %y : ct<0, 1099511627776>\n  %z = rescale %a : ct<0, 1>\n', /level 0/],
    ['rotate of size 3', '  %m = mul %x, %x : ct3<2, 1.2089258196146292e+24>\n  %z = rotate %m by 1 : ct<2, 1.2089258196146292e+24>\n', /size 2/],
    ['undefined value', '  %z = negate %q : ct<2, 1099511627776>\n', /before it is defined/],
    ['unknown constant', '  %p = encode @nope : pt<2, 1099511627776>\n', /unknown constant/],
    ['unknown op', '  %z = frobnicate %x : ct<2, 1099511627776>\n', /unknown FHE op/],
    ['scale out of bounds', '  %p = encode @c : pt<0, 1e45>\n', /scale out of bounds/],
    ['level above top', '  %p = encode @c : pt<5, 1099511627776>\n', /above the top level/],
  ];
  for (const [what, body, msg] of bad) {
    it(`rejects ${what}`, () => {
      const run = () => parseFhe(header + body + '}\n', 'bad.fhe');
      expect(run).toThrow(FhecError);
      expect(run).toThrow(msg);
    });
  }

  it('rejects syntax errors with a line number', () => {
    expect(() => parseFhe('fhe.program @t slots=8 {\n  %x = input "x" : ct<?>\n}')).toThrow(/line 2/);
  });

  it('the builder rejects ill-typed ops as they are made', () => {
    const b = new FheBuilder('b', 8, chain);
    const x = b.input('x', layout, { level: 2, scale: 2 ** 40 });
    const y = b.input('y', layout, { level: 1, scale: 2 ** 40 });
    expect(() => b.add(x, y)).toThrow(FhecError);
    const low = b.modSwitch(b.modSwitch(x));
    expect(() => b.rescale(low)).toThrow(/level 0/);
    expect(() => b.modSwitch(low)).toThrow(/level 0/);
  });

  it('managed verification demands concrete types', () => {
    const b = new FheBuilder('u', 8);
    b.output('y', b.input('x', layout), layout);
    expect(() => verifyFhe(b.build(), { managed: true })).toThrow(/no modulus chain/);
  });
});
