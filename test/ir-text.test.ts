// The textual IR: exact round trips (hand-built graphs, every shared model, random graphs),
// the printer's spellings pinned by a golden file, the parser's meaning checked on hand-written
// text, and parse errors that name line:column.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { ALL_DTYPES, byteSize } from '../ir/dtype.js';
import type { DType } from '../ir/dtype.js';
import { FhecError } from '../ir/errors.js';
import { numel, Tensor } from '../ir/tensor.js';
import { attr, GraphBuilder } from '../ir/graph/builder.js';
import type { AttrValue, Graph, LazyTensor, Shape, Value } from '../ir/graph/types.js';
import { printGraph } from '../ir/text/print.js';
import { IrSyntaxError, parseGraph } from '../ir/text/parse.js';
import { UnavailableTensor, weightsFrom } from '../ir/text/weights.js';
import type { WeightRef } from '../ir/text/weights.js';
import { importOnnx } from '../compiler/onnx/import.js';

import { MODELS } from './helpers/shared.js';
const GOLDEN = path.join(import.meta.dirname, 'golden/ir/small-graph.ir');

/** A weight stored "elsewhere": only its location is printed; load() gives deterministic values. */
class FakeFileTensor implements LazyTensor {
  loads = 0;
  constructor(
    readonly dtype: DType,
    readonly dims: readonly number[],
    readonly location: string,
  ) {}
  get byteLength(): number {
    return numel(this.dims) * byteSize(this.dtype);
  }
  load(): Tensor {
    this.loads++;
    const n = numel(this.dims);
    return Tensor.from(this.dtype, this.dims, Array.from({ length: n }, (_, i) => (i % 7) - 3));
  }
}

// ---------------------------------------------------------------------------------------------
// An independent structural view of a graph, to compare graphs without trusting the printer.
// Numbers are encoded so that -0 and NaN compare exactly.

function num(x: number): number | string {
  return Object.is(x, -0) ? '-0' : Number.isNaN(x) ? 'NaN' : x;
}

function tensorView(t: LazyTensor): unknown {
  return { dtype: t.dtype, dims: [...t.dims], data: Array.from(t.load().data, num) };
}

function attrView(a: AttrValue): unknown {
  switch (a.kind) {
    case 'int':
    case 'float':
      return { kind: a.kind, value: num(a.value) };
    case 'ints':
    case 'floats':
      return { kind: a.kind, value: a.value.map(num) };
    case 'string':
    case 'strings':
      return a;
    case 'tensor':
      return { kind: 'tensor', value: tensorView(a.value) };
  }
}

function valueView(v: Value): unknown {
  return { name: v.name, dtype: v.dtype, shape: v.shape === undefined ? '*' : v.shape };
}

function graphView(g: Graph): unknown {
  return {
    name: g.name,
    opsets: Object.entries(g.opsets),
    inputs: g.inputs.map(valueView),
    constants: g.constants.map((v) => ({ ...(valueView(v) as object), tensor: tensorView(v.constant!) })),
    nodes: g.nodes.map((n) => {
      for (const o of n.outputs) expect(o.producer).toBe(n);
      return {
        name: n.name,
        op: n.op,
        domain: n.domain,
        inputs: n.inputs.map((v) => (v ? v.name : null)),
        outputs: n.outputs.map(valueView),
        attrs: Object.entries(n.attrs).map(([k, a]) => [k, attrView(a)]),
      };
    }),
    outputs: g.outputs.map((v) => v.name),
    metadata: Object.entries(g.metadata),
  };
}

/** print -> parse (weights from the original) -> print: same text, same graph. */
function expectRoundTrip(g: Graph): string {
  const text = printGraph(g);
  const back = parseGraph(text, { resolveWeight: weightsFrom(g) });
  expect(printGraph(back)).toBe(text);
  expect(graphView(back)).toEqual(graphView(g));
  // Without weights the text still parses, to the same structure.
  expect(printGraph(parseGraph(text))).toBe(text);
  return text;
}

// ---------------------------------------------------------------------------------------------

/** A small graph with every feature of the syntax (pinned by the golden file). */
function smallGraph(): Graph {
  const b = new GraphBuilder('main', { '': 14, 'com.microsoft': 1 });
  const ids = b.input('input_ids', 'int64', [1, 'sequence_length']);
  const past = b.input('past.0.key', 'float16', [null, 2, 'past sequence "len"', 16]);
  const anyRank = b.input('mask', 'bool', undefined);
  const embed = b.constant('model.embed_tokens.weight', new FakeFileTensor('float32', [256, 64], 'external:model.onnx.data@1024+65536'));
  const big = b.constant('inline_big', Tensor.zeros('float32', [17]));
  const idx = b.constant('onnx::Gather_7', Tensor.from('int64', [2], [0, -(2 ** 62)]));
  const eps = b.constant('eps', Tensor.scalar('float32', 1e-5));
  const f16c = b.constant('half', Tensor.from('float16', [3], [0.1, 65504, -0]));
  const raw = b.constant('raw', new Tensor('float32', [2], Float64Array.of(0.1, 1 / 3)));
  const bools = b.constant('flags', Tensor.from('bool', [2, 2], [1, 0, 0, 1]));
  const wide = b.constant('special', Tensor.from('float64', [5], [NaN, Infinity, -Infinity, 5e-324, 1e300]));
  const h = b.op1('Gather', [embed, ids], 'float32', [1, 'sequence_length', 64], { axis: attr.int(0) }, {
    name: '/model/embed_tokens/Gather',
    outName: '/model/embed_tokens/Gather_output_0',
  });
  const n = b.node(
    'SkipSimplifiedLayerNormalization',
    [h, null, eps],
    [
      { name: 'normed', dtype: 'float32', shape: [1, 'sequence_length', 64] },
      { name: 'inv_std_var', dtype: 'float32', shape: [1, null, 1] },
      { name: 'skip sum', dtype: 'float32', shape: undefined },
    ],
    {
      epsilon: attr.float(Math.fround(1e-5)),
      alpha: attr.float(0.1),
      neg_zero: attr.float(-0),
      not_a_number: attr.float(NaN),
      tiny: attr.float(1e-300),
      big_int: attr.int(2 ** 63),
      neg: attr.int(-(2 ** 63)),
      axes: attr.ints([-1, 0, 9007199254740993]),
      empty_ints: attr.ints([]),
      empty_floats: attr.floats([]),
      empty_strings: attr.strings([]),
      scales: attr.floats([Math.fround(0.1), 2, Math.fround(-1e-5)]),
      exact_scales: attr.floats([0.1, 0.2]),
      mode: attr.string('constant\n"quoted" \\ ünïcödé 🦙'),
      names: attr.strings(['a', '', 'b c']),
      value: attr.tensor(Tensor.from('float32', [2], [0.5, -2])),
      table: attr.tensor(new FakeFileTensor('int8', [4, 8], 'external:model.onnx.data@0+32')),
      'weird key': attr.int(1),
      name: attr.string('a key named like a keyword'),
    },
    { domain: 'com.microsoft', name: 'layer norm #0' },
  );
  const sum = b.op1('Add', [n.outputs[0]!, big], 'float32', [1, 'sequence_length', 64], {}, { name: '' });
  b.node('Print', [sum, past, anyRank, idx, f16c, raw, bools, wide], [], {}, { domain: 'my.debug', name: 'probe' });
  const odd = b.op1('1st op', [sum], 'float32', [1, 'sequence_length', 64], {}, { domain: 'weird domain', name: 'odd' });
  b.output(odd);
  b.output(n.outputs[1]!);
  b.output(ids);
  b.graph.metadata.producer = 'pytorch';
  b.graph.metadata['producer version'] = '1.13.0';
  return b.graph;
}

describe('golden file', () => {
  test('the small graph prints as test/golden/ir/small-graph.ir', () => {
    const text = printGraph(smallGraph());
    if (process.env.UPDATE_GOLDEN === '1') {
      fs.mkdirSync(path.dirname(GOLDEN), { recursive: true });
      fs.writeFileSync(GOLDEN, text);
    }
    expect(text).toBe(fs.readFileSync(GOLDEN, 'utf8'));
  });

  test('the small graph round-trips, with and without weights', () => {
    const g = smallGraph();
    expectRoundTrip(g);
    const bare = parseGraph(printGraph(g));
    const embed = bare.constants.find((v) => v.name === 'model.embed_tokens.weight')!;
    expect(embed.constant).toBeInstanceOf(UnavailableTensor);
    expect(embed.constant!.location).toBe('external:model.onnx.data@1024+65536');
    expect(embed.constant!.byteLength).toBe(256 * 64 * 4);
    expect(() => embed.constant!.load()).toThrow(FhecError);
    expect(() => embed.constant!.load()).toThrow(
      /weights of %model\.embed_tokens\.weight are not available in this IR text/,
    );
    const table = bare.nodes[1]!.attrs.table!;
    expect(table.kind === 'tensor' && table.value.dims).toEqual([4, 8]);
    expect(() => (table.value as LazyTensor).load()).toThrow(
      /weights of attribute "table" of node "layer norm #0" are not available/,
    );
  });

  test('the printer spells values as documented', () => {
    const text = printGraph(smallGraph());
    const line = (needle: string) => text.split('\n').find((l) => l.includes(needle)) ?? '';
    expect(line('epsilon')).toContain('epsilon = 1e-5 : f32,');
    expect(line('epsilon')).toContain('alpha = 0.1,');
    expect(line('epsilon')).toContain('neg_zero = -0.0, not_a_number = nan, tiny = 1e-300,');
    expect(line('epsilon')).toContain('big_int = 9223372036854775808, neg = -9223372036854775808');
    expect(line('epsilon')).toContain('axes = [-1, 0, 9007199254740992]');
    expect(line('epsilon')).toContain('empty_ints = [] : ints, empty_floats = [] : floats, empty_strings = [] : strings');
    expect(line('epsilon')).toContain('scales = [0.1, 2.0, -1e-5] : f32, exact_scales = [0.1, 0.2],');
    expect(line('epsilon')).toContain('mode = "constant\\n\\"quoted\\" \\\\ ünïcödé 🦙"');
    expect(line('epsilon')).toContain('value = dense<[0.5, -2.0]> : f32[2], table = weight<"external:model.onnx.data@0+32"> : i8[4, 8]');
    expect(line('epsilon')).toContain('"weird key" = 1, name = "a key named like a keyword"} name "layer norm #0"');
    expect(line('epsilon')).toMatch(/^ {2}%normed : f32\[1, "sequence_length", 64\], %inv_std_var : f32\[1, \?, 1\], %"skip sum" : f32\[\*\] = com\.microsoft::SkipSimplifiedLayerNormalization\(%"\/model\/embed_tokens\/Gather_output_0", _, %eps\) \{/);
    expect(line('input %past')).toBe('  input %past.0.key : f16[?, 2, "past sequence \\"len\\"", 16]');
    expect(line('input %mask')).toBe('  input %mask : bool[*]');
    expect(line('%model.embed_tokens.weight :')).toBe(
      '  const %model.embed_tokens.weight : f32[256, 64] = weight<"external:model.onnx.data@1024+65536">',
    );
    expect(line('%inline_big')).toBe('  const %inline_big : f32[17] = weight<"inline">');
    expect(line('%"onnx::Gather_7"')).toBe('  const %"onnx::Gather_7" : i64[2] = dense<[0, -4611686018427387904]>');
    expect(line('%eps')).toBe('  const %eps : f32[] = dense<[1e-5]>');
    expect(line('%half')).toBe('  const %half : f16[3] = dense<[0.1, 65500.0, -0.0]>');
    expect(line('%raw')).toBe('  const %raw : f32[2] = dense<raw [0.1, 0.3333333333333333]>');
    expect(line('%flags')).toBe('  const %flags : bool[2, 2] = dense<[1, 0, 0, 1]>');
    expect(line('%special')).toBe('  const %special : f64[5] = dense<[nan, inf, -inf, 5e-324, 1e+300]>');
    expect(line('= Add(')).not.toContain(' name ');
    expect(line('my.debug::Print')).toMatch(/^ {2}\(\) = my\.debug::Print\(/);
    expect(line('odd')).toContain('= "weird domain"::"1st op"(%add_out) name "odd"');
    expect(line('"producer version"')).toBe('  meta "producer version" = "1.13.0"');
  });

  test('printing is stable and reads small external weights but not large ones', () => {
    const g = smallGraph();
    const embed = g.constants[0]!.constant as FakeFileTensor;
    expect(printGraph(g)).toBe(printGraph(g));
    expect(embed.loads).toBe(0);
    const small = new FakeFileTensor('int32', [2, 2], 'external:x@0+16');
    const b = GraphBuilder.on(g);
    b.constant('small_external', small);
    const text = printGraph(g);
    expect(small.loads).toBe(1);
    expect(text).toContain('const %small_external : i32[2, 2] = dense<[-3, -2, -1, 0]>');
    expect(printGraph(g, { inlineLimit: 3 })).toContain('const %small_external : i32[2, 2] = weight<"external:x@0+16">');
  });
});

describe('the parser reads hand-written text', () => {
  const text = String.raw`
// a comment
graph @"my graph" opsets("" = 17, "com.microsoft" = 1) {
  input %x : f32[2, "n", ?]   // trailing comment
  input %"a b" : i64[*]
  const %c : f32[2] = dense<[0.1, -0.0]>
  const %r : f32[2] = dense<raw [0.1, 1e-5]>
  const %w : f16[40] = weight<"external:w.bin@8+80">
  const %s : i64[] = dense<[9223372036854775807]>
  const %relabel : f32[?] = dense<[1, 2, 3]> : f64[3]
  %y : f32[2, "n", ?], %z : bool[] = com.microsoft::Foo(%x, _, %c, %"a b") {
    f = 1e-5, g = 1e-5 : f32, h = nan, i = -inf, j = inf, k = -0.0, l = 3,
    fs = [1, 2.5] , gs = [0.1] : f32, e = [] : strings, s = "tab\there", ss = ["", "é"],
    t = dense<[1, 2]> : u8[2], big = weight<"inline"> : f32[100], name = 7, "key with space" = -12
  } name "foo node"
  () = Sink(%y)
  output %y
  output %x
  meta producer = "hand"
  meta "2" = "two"
}`;

  test('every construct means what it says', () => {
    const refs: WeightRef[] = [];
    const g = parseGraph(text, {
      resolveWeight: (ref) => {
        refs.push(ref);
        return new FakeFileTensor(ref.dtype, ref.dims, ref.location);
      },
    });
    expect(g.name).toBe('my graph');
    expect(g.opsets).toEqual({ '': 17, 'com.microsoft': 1 });
    expect(g.inputs.map((v) => [v.name, v.dtype, v.shape])).toEqual([
      ['x', 'float32', [2, 'n', null]],
      ['a b', 'int64', undefined],
    ]);
    const [c, r, w, s, relabel] = g.constants;
    expect(Array.from(c!.constant!.load().data)).toEqual([Math.fround(0.1), -0]);
    expect(Object.is(c!.constant!.load().data[1], -0)).toBe(true);
    expect(Array.from(r!.constant!.load().data)).toEqual([0.1, 1e-5]); // raw: not rounded to f32
    expect(w!.constant!.location).toBe('external:w.bin@8+80');
    expect(s!.constant!.load().data[0]).toBe(2 ** 63);
    expect(relabel!.shape).toEqual([null]);
    expect(relabel!.dtype).toBe('float32');
    expect(relabel!.constant!.dtype).toBe('float64');
    expect(relabel!.constant!.dims).toEqual([3]);
    expect(refs).toEqual([
      { owner: { kind: 'constant', value: 'w' }, dtype: 'float16', dims: [40], location: 'external:w.bin@8+80' },
      {
        owner: { kind: 'attribute', node: 'foo node', attr: 'big', nodeIndex: 0 },
        dtype: 'float32',
        dims: [100],
        location: 'inline',
      },
    ]);

    const [foo, sink] = g.nodes;
    expect(foo!.name).toBe('foo node');
    expect(foo!.domain).toBe('com.microsoft');
    expect(foo!.op).toBe('Foo');
    expect(foo!.inputs.map((v) => v?.name ?? null)).toEqual(['x', null, 'c', 'a b']);
    expect(foo!.inputs[0]).toBe(g.inputs[0]);
    expect(foo!.outputs.map((v) => [v.name, v.dtype, v.shape])).toEqual([
      ['y', 'float32', [2, 'n', null]],
      ['z', 'bool', []],
    ]);
    const a = foo!.attrs;
    expect(a.f).toEqual({ kind: 'float', value: 1e-5 });
    expect(a.g).toEqual({ kind: 'float', value: Math.fround(1e-5) });
    expect(a.h!.kind === 'float' && Number.isNaN(a.h!.value)).toBe(true);
    expect(a.i).toEqual({ kind: 'float', value: -Infinity });
    expect(a.j).toEqual({ kind: 'float', value: Infinity });
    expect(a.k!.kind === 'float' && Object.is(a.k!.value, -0)).toBe(true);
    expect(a.l).toEqual({ kind: 'int', value: 3 });
    expect(a.fs).toEqual({ kind: 'floats', value: [1, 2.5] });
    expect(a.gs).toEqual({ kind: 'floats', value: [Math.fround(0.1)] });
    expect(a.e).toEqual({ kind: 'strings', value: [] });
    expect(a.s).toEqual({ kind: 'string', value: 'tab\there' });
    expect(a.ss).toEqual({ kind: 'strings', value: ['', 'é'] });
    expect(a.t!.kind).toBe('tensor');
    expect(a.t!.kind === 'tensor' && a.t!.value.load()).toEqual(Tensor.from('uint8', [2], [1, 2]));
    expect(a.name).toEqual({ kind: 'int', value: 7 });
    expect(a['key with space']).toEqual({ kind: 'int', value: -12 });
    expect(sink!.op).toBe('Sink');
    expect(sink!.name).toBe('');
    expect(sink!.outputs).toEqual([]);
    expect(g.outputs.map((v) => v.name)).toEqual(['y', 'x']);
    expect(g.outputs[0]).toBe(foo!.outputs[0]);
    expect(g.metadata).toEqual({ producer: 'hand', '2': 'two' });

    // Printed back in canonical form, which is again stable.
    const printed = printGraph(g);
    expect(printGraph(parseGraph(printed))).toBe(printed);
    expect(printed).toContain('  const %relabel : f32[?] = dense<[1.0, 2.0, 3.0]> : f64[3]\n');
    expect(printed).toContain('  const %r : f32[2] = dense<raw [0.1, 1e-5]>\n');
    expect(printed).toContain('  () = Sink(%y)\n');
  });

  test('a resolver that returns the wrong shape is an error at the reference', () => {
    let err: unknown;
    try {
      parseGraph(text, { resolveWeight: (ref) => new FakeFileTensor(ref.dtype, [1], ref.location) });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IrSyntaxError);
    expect((err as IrSyntaxError).message).toBe(
      '8:24: the weights resolved for %w are f16[1], not f16[40]',
    );
  });
});

describe('parse errors name line:column and what was expected', () => {
  const ok = 'graph @g {\n  input %x : f32[2]\n  %y : f32[2] = Neg(%x)\n  output %y\n}\n';

  test('the base text parses', () => {
    expect(parseGraph(ok).nodes.length).toBe(1);
  });

  const cases: [string, string, number, number, string][] = [
    ['missing (', ok.replace('Neg(%x)', 'Neg %x)'), 3, 21, "expected '(' but found '%x'"],
    ['missing ]', ok.replace('f32[2]\n  %y', 'f32[2\n  %y'), 3, 3, "expected ']' but found '%y'"],
    ['no op', ok.replace('Neg', ''), 3, 17, "expected an identifier or a string but found '('"],
    ['bad statement', ok.replace('output', 'outptu'), 4, 3, 'expected '],
    ['unknown value', ok.replace('Neg(%x)', 'Neg(%q)'), 3, 21, 'value %q is not defined before this use'],
    [
      'use before definition',
      'graph @g {\n  %y : f32[] = Neg(%z)\n  %z : f32[] = Neg(%y)\n}',
      2,
      20,
      'value %z is not defined before this use',
    ],
    ['unknown output', ok.replace('output %y', 'output %w'), 4, 10, 'value %w is not defined before this use'],
    ['defined twice', ok.replace('%y : f32[2] =', '%x : f32[2] ='), 3, 3, 'value %x is defined twice (first at 2:9)'],
    ['unknown dtype', ok.replace('input %x : f32', 'input %x : f33'), 2, 14, "unknown element type 'f33'"],
    ['bad character', ok.replace('Neg', 'Ne$g'), 3, 19, 'unexpected character "$"'],
    ['unterminated string', ok.replace('Neg(%x)', 'Neg(%x) name "abc\n'), 3, 30, 'unterminated string'],
    ['missing }', ok.slice(0, -2), 5, 1, "expected '}' but found end of input"],
    ['trailing text', ok + 'graph', 6, 1, "expected end of input after the graph's closing '}' but found 'graph'"],
    [
      'dense count',
      ok.replace('  %y', '  const %c : f32[3] = dense<[1, 2]>\n  %y'),
      3,
      23,
      'dense tensor has 2 elements but its type f32[3] needs 3',
    ],
    ['constant with symbolic dims', ok.replace('  %y', '  const %c : f32["n"] = dense<[]>\n  %y'), 3, 14, 'a tensor dimension must be a number >= 0, not "n"'],
    ['empty list without kind', ok.replace('Neg(%x)', 'Neg(%x) {a = []}'), 3, 30, 'an empty list needs its kind'],
    ['mixed list', ok.replace('Neg(%x)', 'Neg(%x) {a = [1, "x"]}'), 3, 30, 'a list attribute mixes strings and numbers'],
    ['int with suffix', ok.replace('Neg(%x)', 'Neg(%x) {a = 1 : f32}'), 3, 34, 'an integer attribute takes no type suffix'],
    ['duplicate attribute', ok.replace('Neg(%x)', 'Neg(%x) {a = 1, a = 2}'), 3, 33, 'attribute "a" is given twice'],
  ];

  test.each(cases)('%s', (_what, text, line, column, message) => {
    let err: unknown;
    try {
      parseGraph(text, { file: 'bad.ir' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IrSyntaxError);
    const e = err as IrSyntaxError;
    expect(e).toBeInstanceOf(FhecError);
    expect(e.detail).toContain(message);
    expect([e.line, e.column]).toEqual([line, column]);
    expect(e.where.file).toBe('bad.ir');
    expect(e.format()).toBe(`bad.ir: ${line}:${column}: ${e.detail}`);
  });

  test('random damage to valid text gives an FhecError or a graph, never a crash', () => {
    const base = printGraph(smallGraph());
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(base.length), fc.nat(6), fc.string({ maxLength: 3 })), { minLength: 1, maxLength: 3 }),
        (edits) => {
          let t = base;
          for (const [at, del, ins] of edits) t = t.slice(0, at) + ins + t.slice(at + del);
          try {
            parseGraph(t);
          } catch (e) {
            if (!(e instanceof FhecError)) throw e;
          }
        },
      ),
      { numRuns: Number(process.env.FC_RUNS ?? 300) },
    );
  });
});

describe('shared models', () => {
  const files = fs.existsSync(MODELS)
    ? [
        ...fs.readdirSync(MODELS).filter((f) => f.endsWith('.onnx')),
        ...fs
          .readdirSync(MODELS, { withFileTypes: true })
          .filter((d) => d.isDirectory())
          .flatMap((d) => fs.readdirSync(path.join(MODELS, d.name)).filter((f) => f.endsWith('.onnx')).map((f) => `${d.name}/${f}`)),
      ]
    : [];

  test('the model folder has models', () => {
    expect(files.length).toBeGreaterThanOrEqual(6);
  });

  test.each(files)('%s round-trips exactly with weights referenced', (file) => {
    const g = importOnnx(path.join(MODELS, file)).graph;
    const text = expectRoundTrip(g);
    // Large weights are references with their location, never inlined.
    const large = g.constants.filter((v) => numel(v.constant!.dims) > 16);
    expect(large.length).toBeGreaterThan(0);
    for (const v of large) {
      expect(text).toContain(`= weight<${JSON.stringify(v.constant!.location)}>`);
    }
    expect(text.length).toBeLessThan(200_000);
  });
});

describe('performance', () => {
  test('printing and parsing a graph of 5000 nodes takes well under a second', () => {
    const b = new GraphBuilder('big');
    let x = b.input('x', 'float32', [1, 'seq', 64]);
    const w = b.constant('w', new FakeFileTensor('float32', [64, 64], 'external:w@0+16384'));
    for (let i = 0; i < 5000; i++) {
      const c = b.constant(`/layer.${i}/Constant_output_0`, Tensor.from('int64', [2], [i, -1]));
      x = b.op1(i % 2 ? 'MatMul' : 'Reshape', [x, i % 2 ? w : c], 'float32', [1, 'seq', 64], {
        axes: attr.ints([0, -1]),
        alpha: attr.float(Math.fround(0.1 * i)),
      }, { name: `/model/layers.${i}/op` });
    }
    b.output(x);
    // CPU time of this process, so that other jobs on the machine do not make the test flaky.
    const cpuMs = <T>(f: () => T): [T, number] => {
      const c0 = process.cpuUsage();
      const r = f();
      const c = process.cpuUsage(c0);
      return [r, (c.user + c.system) / 1000];
    };
    const [text, printMs] = cpuMs(() => printGraph(b.graph));
    const [g, parseMs] = cpuMs(() => parseGraph(text));
    expect(text.length).toBeGreaterThan(1_000_000);
    expect(g.nodes.length).toBe(5000);
    expect(g.constants.length).toBe(5001);
    // Typically ~100 ms each on an idle machine; the bound leaves room for a busy one.
    expect(printMs).toBeLessThan(1000);
    expect(parseMs).toBeLessThan(1000);
  });
});

// ---------------------------------------------------------------------------------------------
// Random graphs.

const weird = fc.oneof(
  fc.string({ maxLength: 6 }),
  fc.string({ unit: 'binary', maxLength: 6 }),
  fc.string({ unit: 'grapheme', maxLength: 4 }),
  fc.constantFrom('', 'a', 'x.y', '0', '%', '@', '"', '\\', 'a b', 'name', 'input', '_', 'nan', '-inf', '::', '\u2028', '\n', '🦙', '__proto__', 'f32[*]'),
);

const intValue = fc.oneof(
  fc.integer(),
  fc.maxSafeInteger(),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map(Number),
  fc.constantFrom(0, -0, 2 ** 53, 2 ** 53 + 2, 2 ** 63, -(2 ** 63), 2 ** 64, 1e21, 1e300, -1e300),
);

const floatValue = fc.oneof(
  fc.double(),
  fc.float(),
  fc.constantFrom(NaN, -0, 0, 1e-300, 5e-324, -5e-324, Infinity, -Infinity, Math.fround(1e-5), 0.1, 1e21, 123456789012345680000),
);

const dtypeArb = fc.constantFrom(...ALL_DTYPES);

const shapeArb: fc.Arbitrary<Shape> = fc.option(
  fc.array(fc.oneof(fc.nat(100), weird, fc.constant(null)), { maxLength: 4 }),
  { nil: undefined },
);

const tensorArb: fc.Arbitrary<LazyTensor | Tensor> = fc.oneof(
  // small, rounded to the dtype
  fc
    .tuple(dtypeArb, fc.array(fc.nat(3), { maxLength: 3 }))
    .chain(([dtype, dims]) =>
      fc
        .array(fc.oneof(floatValue, intValue), { minLength: numel(dims), maxLength: numel(dims) })
        .map((vals) => Tensor.from(dtype, dims, vals)),
    ),
  // small, raw values the dtype may not hold
  fc
    .tuple(dtypeArb, fc.integer({ min: 0, max: 4 }))
    .chain(([dtype, n]) =>
      fc.array(floatValue, { minLength: n, maxLength: n }).map((vals) => new Tensor(dtype, [n], Float64Array.from(vals))),
    ),
  // large: referenced by location
  fc
    .tuple(dtypeArb, fc.integer({ min: 17, max: 40 }), weird)
    .map(([dtype, n, loc]) => new FakeFileTensor(dtype, [n], loc)),
);

const attrArb: fc.Arbitrary<AttrValue> = fc.oneof(
  intValue.map(attr.int),
  floatValue.map(attr.float),
  weird.map(attr.string),
  fc.array(intValue, { maxLength: 4 }).map(attr.ints),
  fc.array(floatValue, { maxLength: 4 }).map(attr.floats),
  fc.array(fc.float(), { maxLength: 4 }).map(attr.floats),
  fc.array(weird, { maxLength: 3 }).map(attr.strings),
  tensorArb.map(attr.tensor),
);

const entries = <T>(arb: fc.Arbitrary<T>) =>
  fc.uniqueArray(fc.tuple(weird, arb), { maxLength: 4, selector: (e) => e[0] });

function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
}

const graphArb = fc
  .record({
    name: weird,
    opsets: entries(fc.integer({ min: 0, max: 30 })),
    inputs: fc.array(fc.record({ name: weird, dtype: dtypeArb, shape: shapeArb }), { maxLength: 3 }),
    constants: fc.array(fc.record({ name: weird, tensor: tensorArb }), { maxLength: 3 }),
    nodes: fc.array(
      fc.record({
        op: weird,
        domain: fc.oneof(fc.constant(''), fc.constant('com.microsoft'), weird),
        name: weird,
        inputs: fc.array(fc.option(fc.nat(), { nil: null }), { maxLength: 4 }),
        outputs: fc.array(fc.record({ name: weird, dtype: dtypeArb, shape: shapeArb }), { maxLength: 3 }),
        attrs: entries(attrArb),
      }),
      { maxLength: 5 },
    ),
    outputs: fc.array(fc.nat(), { maxLength: 3 }),
    metadata: entries(weird),
  })
  .map((spec) => {
    const b = new GraphBuilder(spec.name, {});
    for (const [d, v] of spec.opsets) setOwn(b.graph.opsets, d, v);
    const live: Value[] = [];
    for (const i of spec.inputs) live.push(b.input(i.name, i.dtype, i.shape));
    for (const c of spec.constants) live.push(b.constant(c.name, c.tensor));
    for (const n of spec.nodes) {
      const ins = n.inputs.map((k) => (k === null || live.length === 0 ? null : live[k % live.length]!));
      const attrs: Record<string, AttrValue> = {};
      for (const [k, a] of n.attrs) setOwn(attrs, k, a);
      const node = b.node(n.op, ins, n.outputs, attrs, { domain: n.domain, name: n.name });
      live.push(...node.outputs);
    }
    if (live.length) for (const k of spec.outputs) b.output(live[k % live.length]!);
    for (const [k, v] of spec.metadata) setOwn(b.graph.metadata, k, v);
    return b.graph;
  });

describe('random graphs', () => {
  test('print(parse(print(g))) === print(g), and parse(print(g)) equals g', () => {
    fc.assert(
      fc.property(graphArb, (g) => {
        expectRoundTrip(g);
      }),
      { numRuns: Number(process.env.FC_RUNS ?? 300) },
    );
  });
});
