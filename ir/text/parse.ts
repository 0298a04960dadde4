// Reads the textual IR (see print.ts and grammar.ts) back into a Graph. Every error, lexical,
// syntactic or semantic (unknown dtype, undefined value, wrong element count), is an IrSyntaxError
// naming line:column; the result is checked with verifyGraph.

import type { IToken } from 'chevrotain';
import { dtypeFromShort, DTYPE_SHORT } from '../dtype.js';
import type { DType } from '../dtype.js';
import { FhecError } from '../errors.js';
import { numel, Tensor } from '../tensor.js';
import { MaterializedTensor } from '../graph/types.js';
import type { AttrValue, Dim, Graph, LazyTensor, Node, Shape, Value } from '../graph/types.js';
import type { ValueRange } from '../graph/range.js';
import { verifyGraph } from '../graph/verify.js';
import { IrParser } from './grammar.js';
import type { AttrValueAst, GraphAst, RangeAst, StmtAst, TensorAst, TypeAst } from './grammar.js';
import { rangeFromEntries } from './range.js';
import { irLexer } from './lexer.js';
import { describeOwner, UnavailableTensor } from './weights.js';
import type { WeightOwner, WeightRef } from './weights.js';

export interface ParseOptions {
  /** Named in error messages. */
  file?: string;
  /** Gives the bytes of each `weight<...>` reference; without it they are placeholders that fail on load(). */
  resolveWeight?: (ref: WeightRef) => LazyTensor;
}

/** A parse error at a position in the text (1-based line and column). */
export class IrSyntaxError extends FhecError {
  constructor(
    readonly detail: string,
    readonly line: number,
    readonly column: number,
    file?: string,
  ) {
    super(`${line}:${column}: ${detail}`, { file });
    this.name = 'IrSyntaxError';
  }
}

let sharedParser: IrParser | undefined;

export function parseGraph(text: string, opts: ParseOptions = {}): Graph {
  const lexed = irLexer.tokenize(text);
  if (lexed.errors.length) {
    const e = lexed.errors[0]!;
    const ch = text.slice(e.offset, e.offset + 1);
    const hint =
      ch === '"' ? ' (unterminated string or bad escape)' : ch === '%' || ch === '@' ? ` (expected a name after '${ch}')` : '';
    throw new IrSyntaxError(`unexpected character ${JSON.stringify(ch)}${hint}`, e.line ?? 1, e.column ?? 1, opts.file);
  }
  const parser = (sharedParser ??= new IrParser());
  parser.input = lexed.tokens;
  const ast = parser.graph();
  if (parser.errors.length) {
    const e = parser.errors[0]!;
    const [line, column] = Number.isFinite(e.token.startLine) ? [e.token.startLine!, e.token.startColumn!] : endOf(text);
    throw new IrSyntaxError(e.message, line, column, opts.file);
  }
  return new GraphReader(opts).read(ast);
}

/** obj[key] = value, also for a key like `__proto__` (which plain assignment would not store). */
function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
  else obj[key] = value;
}

function endOf(text: string): [number, number] {
  const lines = text.split(/\r\n|\r|\n/);
  return [lines.length, lines[lines.length - 1]!.length + 1];
}

/** Turns the syntax tree into a Graph, resolving names in text order. */
class GraphReader {
  private readonly values = new Map<string, { value: Value; at: IToken }>();
  private readonly graph: Graph = { name: '', opsets: {}, inputs: [], outputs: [], constants: [], nodes: [], metadata: {} };

  constructor(private readonly opts: ParseOptions) {}

  read(ast: GraphAst): Graph {
    const g = this.graph;
    g.name = this.sigilName(ast.name);
    for (const { domain, version } of ast.opsets) {
      const d = this.str(domain);
      if (Object.hasOwn(g.opsets, d)) this.fail(domain, `opset of domain ${domain.image} is given twice`);
      setOwn(g.opsets, d, this.int(version));
    }
    for (const s of ast.stmts) this.stmt(s);
    try {
      verifyGraph(g);
    } catch (e) {
      throw e instanceof FhecError && this.opts.file ? e.inFile(this.opts.file) : e;
    }
    return g;
  }

  private fail(tok: IToken, message: string): never {
    throw new IrSyntaxError(message, tok.startLine ?? 1, tok.startColumn ?? 1, this.opts.file);
  }

  private stmt(s: StmtAst): void {
    const g = this.graph;
    switch (s.kind) {
      case 'input': {
        const { dtype, shape } = this.type(s.type);
        const v: Value = { name: this.sigilName(s.name), dtype, shape };
        if (s.range) v.range = this.range(s.range);
        this.define(v, s.name);
        g.inputs.push(v);
        return;
      }
      case 'const': {
        const name = this.sigilName(s.name);
        const { dtype, shape } = this.type(s.type);
        const t = this.tensor(s.tensor, s.tensorType ?? s.type, { kind: 'constant', value: name });
        const v: Value = { name, dtype, shape, constant: t };
        if (s.range) v.range = this.range(s.range);
        this.define(v, s.name);
        g.constants.push(v);
        return;
      }
      case 'output':
        g.outputs.push(this.use(s.name));
        return;
      case 'meta': {
        const k = this.key(s.key);
        if (Object.hasOwn(g.metadata, k)) this.fail(s.key, `metadata ${JSON.stringify(k)} is given twice`);
        setOwn(g.metadata, k, this.str(s.value));
        return;
      }
      case 'node': {
        const node: Node = {
          name: s.nodeName ? this.str(s.nodeName) : '',
          op: this.key(s.op),
          domain: s.domain ? this.key(s.domain) : '',
          inputs: s.inputs.map((t) => (t.tokenType.name === 'ValueName' ? this.use(t) : null)),
          outputs: [],
          attrs: {},
        };
        for (const a of s.attrs) {
          const k = this.key(a.key);
          if (Object.hasOwn(node.attrs, k)) this.fail(a.key, `attribute ${JSON.stringify(k)} is given twice`);
          const owner: WeightOwner = { kind: 'attribute', node: node.name, attr: k, nodeIndex: g.nodes.length };
          setOwn(node.attrs, k, this.attr(a.value, owner));
        }
        for (const o of s.outputs) {
          const { dtype, shape } = this.type(o.type);
          const v: Value = { name: this.sigilName(o.name), dtype, shape, producer: node };
          if (o.range) v.range = this.range(o.range);
          this.define(v, o.name);
          node.outputs.push(v);
        }
        g.nodes.push(node);
        return;
      }
    }
  }

  /** A `range<...>` annotation; its entries are checked by rangeFromEntries. */
  private range(r: RangeAst): ValueRange {
    const entries = r.entries.map(({ key, value }) => ({
      key: this.key(key),
      at: key,
      value: 'entries' in value ? this.range(value) : this.num(value),
    }));
    const out = rangeFromEntries(entries, (at, message) => this.fail(at ?? r.start, message));
    return out;
  }

  private define(v: Value, at: IToken): void {
    const prev = this.values.get(v.name);
    if (prev) {
      this.fail(at, `value ${at.image} is defined twice (first at ${prev.at.startLine}:${prev.at.startColumn})`);
    }
    this.values.set(v.name, { value: v, at });
  }

  private use(tok: IToken): Value {
    const v = this.values.get(this.sigilName(tok));
    if (!v) this.fail(tok, `value ${tok.image} is not defined before this use`);
    return v.value;
  }

  private sigilName(tok: IToken): string {
    return tok.image[1] === '"' ? this.str(tok, 1) : tok.image.slice(1);
  }

  private str(tok: IToken, skip = 0): string {
    try {
      return JSON.parse(skip ? tok.image.slice(skip) : tok.image) as string;
    } catch {
      this.fail(tok, `bad string literal ${tok.image}`);
    }
  }

  private key(tok: IToken): string {
    return tok.tokenType.name === 'StringLit' ? this.str(tok) : tok.image;
  }

  private int(tok: IToken): number {
    if (tok.tokenType.name !== 'IntLit') this.fail(tok, `expected an integer but found '${tok.image}'`);
    return Number(tok.image);
  }

  private num(tok: IToken): number {
    switch (tok.tokenType.name) {
      case 'Kw_nan':
        return NaN;
      case 'Kw_inf':
        return Infinity;
      case 'NegInf':
        return -Infinity;
      default:
        return Number(tok.image);
    }
  }

  private isFloatToken(tok: IToken): boolean {
    return tok.tokenType.name !== 'IntLit';
  }

  private dtype(tok: IToken, name: string): DType {
    const d = dtypeFromShort(name);
    if (!d) this.fail(tok, `unknown element type '${name}' (expected one of ${Object.values(DTYPE_SHORT).join(', ')})`);
    return d;
  }

  private type(t: TypeAst): { dtype: DType; shape: Shape } {
    if ('lit' in t) return this.typeLit(t.lit);
    const dtype = this.dtype(t.dtype, t.dtype.image);
    const shape: Shape = t.dims?.map((d): Dim => {
      if (d.tokenType.name === 'Question') return null;
      if (d.tokenType.name === 'StringLit') return this.str(d);
      return this.int(d);
    });
    return { dtype, shape };
  }

  /** Decodes a TypeLit token; the lexer has checked its form (dims: ints, '?', JSON strings, or '*'). */
  private typeLit(tok: IToken): { dtype: DType; shape: Shape } {
    const s = tok.image;
    const open = s.indexOf('[');
    const dtype = this.dtype(tok, s.slice(0, open));
    const body = s.slice(open + 1, -1).trim();
    if (body === '*') return { dtype, shape: undefined };
    const shape: Dim[] = [];
    let i = 0;
    while (i < body.length) {
      const c = body[i]!;
      if (c === ' ' || c === '\t' || c === ',') {
        i++;
      } else if (c === '?') {
        shape.push(null);
        i++;
      } else if (c === '"') {
        let j = i + 1;
        while (body[j] !== '"') j += body[j] === '\\' ? 2 : 1;
        shape.push(JSON.parse(body.slice(i, j + 1)) as string);
        i = j + 1;
      } else {
        let j = i + 1;
        while (j < body.length && body[j] !== ',' && body[j] !== ' ' && body[j] !== '\t') j++;
        shape.push(Number(body.slice(i, j)));
        i = j;
      }
    }
    return { dtype, shape };
  }

  /** A tensor literal's type: element type and concrete dims. */
  private tensorType(t: TypeAst): { dtype: DType; dims: number[] } {
    const { dtype, shape } = this.type(t);
    const at = 'lit' in t ? t.lit : t.dtype;
    if (shape === undefined) this.fail(at, 'a tensor needs a known rank, not [*]');
    const dims = shape.map((d, i) => {
      if (typeof d !== 'number' || d < 0) {
        const tok = 'lit' in t ? t.lit : t.dims![i]!;
        this.fail(tok, `a tensor dimension must be a number >= 0, not ${d === null ? '?' : JSON.stringify(d)}`);
      }
      return d;
    });
    return { dtype, dims };
  }

  private tensor(lit: TensorAst, typeAst: TypeAst, owner: WeightOwner): LazyTensor {
    const { dtype, dims } = this.tensorType(typeAst);
    if (lit.kind === 'weight') {
      const ref: WeightRef = { owner, dtype, dims, location: this.str(lit.location) };
      if (!this.opts.resolveWeight) return new UnavailableTensor(ref, this.opts.file);
      let t: LazyTensor;
      try {
        t = this.opts.resolveWeight(ref);
      } catch (e) {
        if (e instanceof FhecError) this.fail(lit.start, e.message);
        throw e;
      }
      if (t.dtype !== dtype || t.dims.length !== dims.length || t.dims.some((d, i) => d !== dims[i])) {
        this.fail(
          lit.start,
          `the weights resolved for ${describeOwner(owner)} are ${DTYPE_SHORT[t.dtype]}[${t.dims.join(', ')}], ` +
            `not ${DTYPE_SHORT[dtype]}[${dims.join(', ')}]`,
        );
      }
      return t;
    }
    const n = numel(dims);
    if (lit.elems.length !== n) {
      this.fail(lit.start, `dense tensor has ${lit.elems.length} elements but its type ${DTYPE_SHORT[dtype]}[${dims.join(', ')}] needs ${n}`);
    }
    const data = new Float64Array(n);
    for (let i = 0; i < n; i++) data[i] = this.num(lit.elems[i]!);
    // Without `raw`, values are rounded to the element type, as the printer's shortest forms assume.
    return new MaterializedTensor(lit.raw ? new Tensor(dtype, dims, data) : Tensor.from(dtype, dims, data));
  }

  private attr(a: AttrValueAst, owner: WeightOwner): AttrValue {
    switch (a.kind) {
      case 'tensor':
        return { kind: 'tensor', value: this.tensor(a.tensor, a.type, owner) };
      case 'scalar': {
        const tok = a.tok;
        if (tok.tokenType.name === 'StringLit') return { kind: 'string', value: this.str(tok) };
        const x = this.num(tok);
        if (!this.isFloatToken(tok)) {
          if (a.suffix) this.fail(a.suffix, `an integer attribute takes no type suffix (write ${tok.image}.0 for a float)`);
          return { kind: 'int', value: x };
        }
        return { kind: 'float', value: this.floatSuffix(a.suffix) ? Math.fround(x) : x };
      }
      case 'list': {
        const strings = a.elems.filter((t) => t.tokenType.name === 'StringLit');
        if (strings.length && strings.length !== a.elems.length) {
          this.fail(a.start, 'a list attribute mixes strings and numbers');
        }
        const suffix = a.suffix?.image;
        let kind: 'ints' | 'floats' | 'strings';
        if (a.elems.length === 0) {
          if (suffix !== 'ints' && suffix !== 'floats' && suffix !== 'strings') {
            this.fail(a.suffix ?? a.start, "an empty list needs its kind: '[] : ints', '[] : floats' or '[] : strings'");
          }
          return { kind: suffix, value: [] } as AttrValue;
        }
        if (strings.length) kind = 'strings';
        else if (suffix === 'floats' || suffix === 'f32' || a.elems.some((t) => this.isFloatToken(t))) kind = 'floats';
        else kind = 'ints';
        if (suffix !== undefined && suffix !== kind && !(suffix === 'f32' && kind === 'floats')) {
          this.fail(a.suffix!, `a list of ${kind} cannot have the suffix '${suffix}'`);
        }
        if (kind === 'strings') return { kind, value: a.elems.map((t) => this.str(t)) };
        const round = kind === 'floats' && suffix === 'f32';
        const value = a.elems.map((t) => (round ? Math.fround(this.num(t)) : this.num(t)));
        return { kind, value };
      }
    }
  }

  /** Whether a float literal carries `: f32` (round to float32); other suffixes are errors. */
  private floatSuffix(suffix: IToken | undefined): boolean {
    if (!suffix) return false;
    if (suffix.image !== 'f32') this.fail(suffix, `expected 'f32' after a float value but found '${suffix.image}'`);
    return true;
  }
}
