// Parser for the textual FHE IR (see print.ts for the syntax), built with chevrotain.
// The parsed program is verified (verifyFhe) before it is returned.

import { createToken, EmbeddedActionsParser, Lexer, type IToken, type TokenType } from 'chevrotain';
import { FhecError } from '../errors.js';
import { verifyFhe } from './verify.js';
import { GEOMETRY_FIELDS, type DiagonalGeometry } from './diagonal.js';
import { FHE_OP_KINDS, type FheChain, type FheAttribute, type FheConstant, type FheConstantData, type FheOp, type FheOpKind, type FheProgram, type FheType, type FheValue, type SlotLayout } from './types.js';

const Identifier = createToken({ name: 'Identifier', pattern: /[A-Za-z_][A-Za-z0-9_.]*/ });
const kw = (name: string, text: string): TokenType =>
  createToken({ name, pattern: new RegExp(text.replace('.', '\\.')), longer_alt: Identifier });

const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /\s+/, group: Lexer.SKIPPED });
const Comment = createToken({ name: 'Comment', pattern: /\/\/[^\n]*/, group: Lexer.SKIPPED });
const ProgramKw = kw('Program', 'fhe.program');
const SlotsKw = kw('Slots', 'slots');
const ChainKw = kw('Chain', 'chain');
const PrimesKw = kw('Primes', 'primes');
const ConstKw = kw('Const', 'const');
const AttrKw = kw('Attr', 'attr');
const SplatKw = kw('Splat', 'splat');
const DenseKw = kw('Dense', 'dense');
const WeightsKw = kw('Weights', 'weights');
const ElidedKw = kw('Elided', 'elided');
const DiagonalKw = kw('Diagonal', 'diagonal');
const InputKw = kw('Input', 'input');
const OutputKw = kw('Output', 'output');
const EncodeKw = kw('Encode', 'encode');
const RotateKw = kw('Rotate', 'rotate');
const LayoutKw = kw('Layout', 'layout');
const ByKw = kw('By', 'by');
const TimesKw = kw('Times', 'times');
const TypeKw = createToken({ name: 'TypeKw', pattern: /ct3|ct|pt/, longer_alt: Identifier });
const ValueName = createToken({ name: 'ValueName', pattern: /%[A-Za-z0-9_.]+/ });
const GlobalName = createToken({ name: 'GlobalName', pattern: /@[A-Za-z0-9_.]+/ });
const StringLit = createToken({ name: 'StringLit', pattern: /"(?:[^"\\]|\\.)*"/ });
const NumberLit = createToken({
  name: 'NumberLit',
  pattern: /-?(?:Infinity|NaN|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)/,
});
const punct = (name: string, ch: string): TokenType => createToken({ name, pattern: new RegExp(`\\${ch}`) });
const LBrace = punct('LBrace', '{');
const RBrace = punct('RBrace', '}');
const LParen = punct('LParen', '(');
const RParen = punct('RParen', ')');
const LBracket = punct('LBracket', '[');
const RBracket = punct('RBracket', ']');
const LAngle = punct('LAngle', '<');
const RAngle = punct('RAngle', '>');
const Comma = punct('Comma', ',');
const Equals = punct('Equals', '=');
const Colon = punct('Colon', ':');
const Question = punct('Question', '?');

const allTokens = [
  WhiteSpace, Comment, ProgramKw, SlotsKw, ChainKw, PrimesKw, ConstKw, AttrKw, SplatKw, DenseKw, WeightsKw, ElidedKw, DiagonalKw,
  InputKw, OutputKw, EncodeKw, RotateKw, LayoutKw, ByKw, TimesKw, TypeKw, Identifier, ValueName, GlobalName,
  StringLit, NumberLit, LBrace, RBrace, LParen, RParen, LBracket, RBracket, LAngle, RAngle, Comma,
  Equals, Colon, Question,
];
const lexer = new Lexer(allTokens);

interface ParsedOp {
  result?: string;
  kind: FheOpKind;
  args: string[];
  type?: FheType;
  step?: number;
  tensor?: string;
  layout?: SlotLayout;
  constant?: string;
  factor?: number;
  line: number;
}

interface ParsedProgram {
  name: string;
  slots: number;
  chain?: FheChain;
  attributes: Record<string, FheAttribute>;
  constants: FheConstant[];
  ops: ParsedOp[];
}

function num(t: IToken): number {
  return Number(t.image);
}

function int(t: IToken, what: string): number {
  const v = Number(t.image);
  if (!Number.isSafeInteger(v)) throw new FhecError(`line ${t.startLine}: ${what} must be an integer, got ${t.image}`);
  return v;
}

class FheTextParser extends EmbeddedActionsParser {
  constructor() {
    super(allTokens, { recoveryEnabled: false });
    this.performSelfAnalysis();
  }

  program = this.RULE('program', (): ParsedProgram => {
    this.CONSUME(ProgramKw);
    const name = this.CONSUME(GlobalName).image.slice(1);
    this.CONSUME(SlotsKw);
    this.CONSUME(Equals);
    const slotsTok = this.CONSUME(NumberLit);
    this.CONSUME(LBrace);
    let chain: FheChain | undefined;
    this.OPTION(() => {
      chain = this.SUBRULE(this.chain);
    });
    const attributes: Record<string, FheAttribute> = {};
    this.MANY1(() => {
      const a = this.SUBRULE(this.attribute);
      this.ACTION(() => {
        if (a.key in attributes) throw new FhecError(`line ${a.line}: attribute ${a.key} is given twice`);
        attributes[a.key] = a.value;
      });
    });
    const constants: FheConstant[] = [];
    const ops: ParsedOp[] = [];
    this.MANY2(() => {
      this.OR([
        { ALT: () => constants.push(this.SUBRULE(this.constantDecl)) },
        { ALT: () => ops.push(this.SUBRULE(this.outputOp)) },
        { ALT: () => ops.push(this.SUBRULE(this.assignOp)) },
      ]);
    });
    this.CONSUME(RBrace);
    return this.ACTION(() => ({ name, slots: int(slotsTok, 'slots'), chain, attributes, constants, ops }));
  });

  attribute = this.RULE('attribute', (): { key: string; value: FheAttribute; line: number } => {
    this.CONSUME(AttrKw);
    const key = this.CONSUME(Identifier);
    this.CONSUME(Equals);
    const value = this.OR([{ ALT: () => this.CONSUME(NumberLit) }, { ALT: () => this.CONSUME(StringLit) }]);
    return this.ACTION(() => ({
      key: key.image,
      value: value.tokenType === StringLit ? (JSON.parse(value.image) as string) : num(value),
      line: key.startLine ?? 0,
    }));
  });

  chain = this.RULE('chain', (): FheChain => {
    this.CONSUME(ChainKw);
    const nName = this.CONSUME(Identifier);
    this.CONSUME(Equals);
    const n = this.CONSUME(NumberLit);
    this.CONSUME(PrimesKw);
    this.CONSUME2(Equals);
    this.CONSUME(LBracket);
    const primes: IToken[] = [];
    this.MANY_SEP({ SEP: Comma, DEF: () => primes.push(this.CONSUME2(NumberLit)) });
    this.CONSUME(RBracket);
    return this.ACTION(() => {
      if (nName.image !== 'N') throw new FhecError(`line ${nName.startLine}: expected N=`);
      return {
        ringDegree: int(n, 'N'),
        primes: primes.map((p) => {
          if (!/^\d+$/.test(p.image)) throw new FhecError(`line ${p.startLine}: prime ${p.image} is not an integer`);
          return BigInt(p.image);
        }),
      };
    });
  });

  constantDecl = this.RULE('constantDecl', (): FheConstant => {
    this.CONSUME(ConstKw);
    const name = this.CONSUME(GlobalName).image.slice(1);
    this.CONSUME(Equals);
    const data = this.OR<FheConstantData>([
      {
        ALT: () => {
          this.CONSUME(SplatKw);
          const v = this.CONSUME(NumberLit);
          return this.ACTION(() => ({ kind: 'splat' as const, value: num(v) }));
        },
      },
      {
        ALT: () => {
          this.CONSUME(DenseKw);
          this.CONSUME(LBracket);
          const vals: IToken[] = [];
          this.MANY_SEP({ SEP: Comma, DEF: () => vals.push(this.CONSUME2(NumberLit)) });
          this.CONSUME(RBracket);
          return this.ACTION(() => ({ kind: 'dense' as const, values: Float64Array.from(vals, num) }));
        },
      },
      {
        ALT: () => {
          this.CONSUME(WeightsKw);
          const off = this.CONSUME3(NumberLit);
          const len = this.CONSUME4(NumberLit);
          return this.ACTION(() => ({ kind: 'weights' as const, offset: int(off, 'offset'), length: int(len, 'length') }));
        },
      },
      {
        ALT: () => {
          this.CONSUME(ElidedKw);
          const len = this.CONSUME5(NumberLit);
          return this.ACTION(() => ({ kind: 'elided' as const, length: int(len, 'length') }));
        },
      },
      {
        // The matrix is bound to its weights by the plan that holds the program (runtime/plan).
        ALT: () => {
          this.CONSUME(DiagonalKw);
          const id = this.CONSUME6(NumberLit);
          this.CONSUME2(LBracket);
          const vals: IToken[] = [];
          this.MANY_SEP2({ SEP: Comma, DEF: () => vals.push(this.CONSUME7(NumberLit)) });
          this.CONSUME2(RBracket);
          return this.ACTION(() => {
            if (vals.length !== GEOMETRY_FIELDS.length) throw new FhecError(`line ${id.startLine}: diagonal geometry has ${vals.length} numbers, expected ${GEOMETRY_FIELDS.length} (${GEOMETRY_FIELDS.join(', ')})`);
            const g = Object.fromEntries(GEOMETRY_FIELDS.map((f, i) => [f, int(vals[i]!, f)])) as unknown as DiagonalGeometry;
            return { kind: 'diagonal' as const, matrix: { id: int(id, 'matrix') }, geometry: g };
          });
        },
      },
    ]);
    return { name, data };
  });

  layout = this.RULE('layout', (): SlotLayout => {
    this.CONSUME(LayoutKw);
    this.CONSUME(LParen);
    const v: IToken[] = [];
    this.AT_LEAST_ONE_SEP({ SEP: Comma, DEF: () => v.push(this.CONSUME(NumberLit)) });
    this.CONSUME(RParen);
    return this.ACTION(() => {
      if (v.length !== 5) throw new FhecError(`line ${v[0]!.startLine}: layout needs 5 numbers (length, tokens, stride, period, copies)`);
      const [length, tokens, stride, period, copies] = v.map((t) => int(t, 'layout field'));
      return { length: length!, tokens: tokens!, stride: stride!, period: period!, copies: copies! };
    });
  });

  type = this.RULE('type', (): FheType => {
    const kindTok = this.CONSUME(TypeKw);
    this.CONSUME(LAngle);
    let level: IToken | undefined;
    let scale: IToken | undefined;
    this.OR([
      { ALT: () => this.CONSUME(Question) },
      {
        ALT: () => {
          level = this.CONSUME(NumberLit);
          this.CONSUME(Comma);
          scale = this.CONSUME2(NumberLit);
        },
      },
    ]);
    this.CONSUME(RAngle);
    return this.ACTION(() => {
      const at = level ? { level: int(level, 'level'), scale: num(scale!) } : {};
      if (kindTok.image === 'pt') return { kind: 'pt' as const, ...at };
      return { kind: 'ct' as const, size: kindTok.image === 'ct3' ? 3 : 2, ...at };
    });
  });

  outputOp = this.RULE('outputOp', (): ParsedOp => {
    const kwTok = this.CONSUME(OutputKw);
    const tensor = this.CONSUME(StringLit);
    const arg = this.CONSUME(ValueName);
    const layout = this.SUBRULE(this.layout);
    return this.ACTION(() => ({
      kind: 'output' as const,
      args: [arg.image.slice(1)],
      tensor: JSON.parse(tensor.image) as string,
      layout,
      line: kwTok.startLine ?? 0,
    }));
  });

  assignOp = this.RULE('assignOp', (): ParsedOp => {
    const res = this.CONSUME(ValueName);
    this.CONSUME(Equals);
    const op = this.OR<Omit<ParsedOp, 'result' | 'type' | 'line'>>([
      {
        ALT: () => {
          this.CONSUME(InputKw);
          const tensor = this.CONSUME(StringLit);
          const layout = this.SUBRULE(this.layout);
          return this.ACTION(() => ({ kind: 'input' as const, args: [], tensor: JSON.parse(tensor.image) as string, layout }));
        },
      },
      {
        ALT: () => {
          this.CONSUME(EncodeKw);
          const c = this.CONSUME(GlobalName);
          return this.ACTION(() => ({ kind: 'encode' as const, args: [], constant: c.image.slice(1) }));
        },
      },
      {
        ALT: () => {
          this.CONSUME(RotateKw);
          const a = this.CONSUME2(ValueName);
          this.CONSUME(ByKw);
          const s = this.CONSUME(NumberLit);
          return this.ACTION(() => ({ kind: 'rotate' as const, args: [a.image.slice(1)], step: int(s, 'rotation step') }));
        },
      },
      {
        ALT: () => {
          const name = this.CONSUME(Identifier);
          const args: IToken[] = [];
          this.AT_LEAST_ONE_SEP({ SEP: Comma, DEF: () => args.push(this.CONSUME3(ValueName)) });
          let factor: IToken | undefined;
          this.OPTION(() => {
            this.CONSUME(TimesKw);
            factor = this.CONSUME2(NumberLit);
          });
          return this.ACTION(() => {
            const kind = name.image as FheOpKind;
            if (!FHE_OP_KINDS.includes(kind) || ['input', 'output', 'encode', 'rotate'].includes(kind)) {
              throw new FhecError(`line ${name.startLine}: unknown FHE op '${name.image}'`);
            }
            if (factor && kind !== 'refresh') throw new FhecError(`line ${name.startLine}: only refresh takes a factor ('times')`);
            return { kind, args: args.map((a) => a.image.slice(1)), ...(factor ? { factor: num(factor) } : {}) };
          });
        },
      },
    ]);
    this.CONSUME(Colon);
    const type = this.SUBRULE(this.type);
    return this.ACTION(() => ({ ...op, result: res.image.slice(1), type, line: res.startLine ?? 0 }));
  });
}

let parserInstance: FheTextParser | undefined;

/** Parses and verifies an FHE program. `file` is used in error messages. */
export function parseFhe(text: string, file?: string): FheProgram {
  const where = file ? { file } : {};
  const lexed = lexer.tokenize(text);
  if (lexed.errors.length > 0) {
    const e = lexed.errors[0]!;
    throw new FhecError(`line ${e.line}, column ${e.column}: unexpected character`, where);
  }
  parserInstance ??= new FheTextParser();
  const parser = parserInstance;
  parser.input = lexed.tokens;
  let parsed: ParsedProgram;
  try {
    parsed = parser.program();
  } catch (e) {
    throw e instanceof FhecError ? e.inFile(file ?? '') : e;
  }
  if (parser.errors.length > 0) {
    const e = parser.errors[0]!;
    throw new FhecError(`line ${e.token.startLine ?? '?'}: ${e.message}`, where);
  }
  const constants = new Map<string, FheConstant>();
  for (const c of parsed.constants) {
    if (constants.has(c.name)) throw new FhecError(`constant @${c.name} is declared twice`, where);
    constants.set(c.name, c);
  }
  const values = new Map<string, FheValue>();
  const ops: FheOp[] = parsed.ops.map((p) => {
    const args = p.args.map((a) => {
      const v = values.get(a);
      if (!v) throw new FhecError(`line ${p.line}: %${a} is used before it is defined`, where);
      return v;
    });
    const op: FheOp = { kind: p.kind, args };
    if (p.step !== undefined) op.step = p.step;
    if (p.tensor !== undefined) op.tensor = p.tensor;
    if (p.layout) op.layout = p.layout;
    if (p.constant !== undefined) op.constant = p.constant;
    if (p.factor !== undefined) op.factor = p.factor;
    if (p.result !== undefined) {
      if (values.has(p.result)) throw new FhecError(`line ${p.line}: %${p.result} is defined twice`, where);
      op.result = { name: p.result, type: p.type! };
      values.set(p.result, op.result);
    }
    return op;
  });
  const program: FheProgram = { name: parsed.name, slots: parsed.slots, constants, ops };
  if (parsed.chain) program.chain = parsed.chain;
  if (Object.keys(parsed.attributes).length) program.attributes = parsed.attributes;
  try {
    verifyFhe(program);
  } catch (e) {
    if (!(e instanceof FhecError)) throw e;
    // The verifier names the op (`%v = kind`); the reader of a file also wants its line.
    const result = /^%(\S+) = /.exec(e.where.node ?? '')?.[1];
    const line = parsed.ops.find((p) => p.result === result)?.line;
    const located = line !== undefined && result !== undefined ? new FhecError(`line ${line}: ${e.message}`, e.where) : e;
    throw file ? located.inFile(file) : located;
  }
  return program;
}
