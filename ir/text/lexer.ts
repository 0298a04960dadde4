// Tokens of the textual IR. Keywords are also identifiers (token category), so an op, attribute
// or metadata key may be called `name` or `input` without quotes.

import { createToken, Lexer } from 'chevrotain';
import type { TokenType } from 'chevrotain';

// Token categories: one CONSUME matches any member, which keeps the parser's alternations few.
/** Attribute keys, op names, domains, metadata keys: an identifier or a quoted string. */
export const KeyTok = createToken({ name: 'KeyTok', pattern: Lexer.NA, label: 'an identifier or a string' });
/** Numeric literals. */
export const NumberTok = createToken({ name: 'NumberTok', pattern: Lexer.NA, label: 'a number' });
/** Dimensions in a type: a size, a symbolic name or '?'. */
export const DimTok = createToken({ name: 'DimTok', pattern: Lexer.NA, label: "a dimension (a number, a string or '?')" });
/** Node inputs: a value or '_' for an omitted one. */
export const InputTok = createToken({ name: 'InputTok', pattern: Lexer.NA, label: "a value name or '_'" });

const STRING_BODY = String.raw`"(?:[^"\\\n\r]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"`;

export const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /[ \t\r\n]+/, group: Lexer.SKIPPED });
export const Comment = createToken({ name: 'Comment', pattern: /\/\/[^\n\r]*/, group: Lexer.SKIPPED });

export const ValueName = createToken({
  name: 'ValueName',
  pattern: new RegExp(`%(?:[A-Za-z0-9_.]+|${STRING_BODY})`),
  start_chars_hint: ['%'],
  categories: [InputTok],
  label: 'a value name (%x)',
});
export const GraphName = createToken({
  name: 'GraphName',
  pattern: new RegExp(`@(?:[A-Za-z0-9_.]+|${STRING_BODY})`),
  start_chars_hint: ['@'],
  label: 'a graph name (@main)',
});
export const StringLit = createToken({
  name: 'StringLit',
  pattern: new RegExp(STRING_BODY),
  start_chars_hint: ['"'],
  categories: [KeyTok, DimTok],
  label: 'a string',
});

// A whole well-formed type (`f32[1, "seq", ?]`, `i64[*]`) as one token: types are on every value,
// and one token instead of eight makes big graphs parse about twice as fast. Anything unusual (line
// breaks inside, a typo) does not match and is lexed piece by piece, so errors still point precisely.
const DIM = String.raw`(?:-?\d+|\?|${STRING_BODY})`;
export const TypeLit = createToken({
  name: 'TypeLit',
  pattern: new RegExp(String.raw`[A-Za-z_][A-Za-z0-9_]*\[[ \t]*(?:\*|${DIM}(?:[ \t]*,[ \t]*${DIM})*)?[ \t]*\]`),
  label: 'a type (f32[1, "n", ?])',
});

export const Ident = createToken({
  name: 'Ident',
  pattern: /[A-Za-z_][A-Za-z0-9_.]*/,
  categories: [KeyTok],
  label: 'an identifier',
});

function keyword(word: string, categories: TokenType[] = []): TokenType {
  return createToken({
    name: `Kw_${word}`,
    pattern: word,
    longer_alt: Ident,
    categories: [Ident, ...categories],
    label: `'${word}'`,
  });
}

export const KwGraph = keyword('graph');
export const KwOpsets = keyword('opsets');
export const KwInput = keyword('input');
export const KwConst = keyword('const');
export const KwOutput = keyword('output');
export const KwMeta = keyword('meta');
export const KwName = keyword('name');
export const KwDense = keyword('dense');
export const KwRaw = keyword('raw');
export const KwWeight = keyword('weight');
export const KwRange = keyword('range');
export const KwNan = keyword('nan', [NumberTok]);
export const KwInf = keyword('inf', [NumberTok]);
export const Underscore = keyword('_', [InputTok]);

export const NegInf = createToken({ name: 'NegInf', pattern: /-inf/, categories: [NumberTok], label: "'-inf'" });
export const FloatLit = createToken({
  name: 'FloatLit',
  pattern: /-?(?:\d+\.\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)/,
  categories: [NumberTok],
  label: 'a float',
});
export const IntLit = createToken({ name: 'IntLit', pattern: /-?\d+/, categories: [NumberTok, DimTok], label: 'an integer' });

function punct(name: string, text: string): TokenType {
  return createToken({ name, pattern: text, label: `'${text}'` });
}

export const DoubleColon = punct('DoubleColon', '::');
export const Colon = punct('Colon', ':');
export const Comma = punct('Comma', ',');
export const Equals = punct('Equals', '=');
export const LBrace = punct('LBrace', '{');
export const RBrace = punct('RBrace', '}');
export const LParen = punct('LParen', '(');
export const RParen = punct('RParen', ')');
export const LBracket = punct('LBracket', '[');
export const RBracket = punct('RBracket', ']');
export const LAngle = punct('LAngle', '<');
export const RAngle = punct('RAngle', '>');
export const Question = createToken({ name: 'Question', pattern: '?', categories: [DimTok], label: "'?'" });
export const Star = punct('Star', '*');

export const allTokens: TokenType[] = [
  KeyTok, NumberTok, DimTok, InputTok,
  WhiteSpace, Comment,
  ValueName, GraphName, StringLit, TypeLit,
  KwGraph, KwOpsets, KwInput, KwConst, KwOutput, KwMeta, KwName, KwDense, KwRaw, KwWeight, KwRange, KwNan, KwInf, Underscore,
  Ident,
  NegInf, FloatLit, IntLit,
  DoubleColon, Colon, Comma, Equals, LBrace, RBrace, LParen, RParen, LBracket, RBracket, LAngle, RAngle,
  Question, Star,
];

export const irLexer = new Lexer(allTokens, { ensureOptimizations: true, positionTracking: 'onlyStart' });
