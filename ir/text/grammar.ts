// The grammar of the textual IR, as a chevrotain parser producing a syntax tree of tokens.
// Meaning (dtypes, value lookup, tensor data) is given to it by parse.ts, which keeps the tokens'
// positions for its error messages.
//
//   graph     := 'graph' GraphName ('opsets' '(' (String '=' Int),* ')')? '{' stmt* '}'
//   stmt      := 'input' ValueName ':' type range?
//              | 'const' ValueName ':' type range? '=' tensor (':' type)?
//              | outputs '=' op '(' (ValueName | '_'),* ')' ('{' attr,* '}')? ('name' String)?
//              | 'output' ValueName
//              | 'meta' key '=' String
//   outputs   := '(' ')' | (ValueName ':' type range?),+
//   range     := 'range' '<' (key '=' (number | range)),* '>'   (calibrated range, ir/graph/range.ts)
//   op        := key ('::' key)?                   key := Ident | String
//   type      := Ident '[' ('*' | (Int | String | '?'),*) ']'   (usually lexed as one TypeLit token)
//   tensor    := 'dense' '<' 'raw'? '[' number,* ']' '>' | 'weight' '<' String '>'
//   attr      := key '=' (number (':' Ident)? | String | '[' (number | String),* ']' (':' Ident)? | tensor ':' type)
//   number    := Int | Float | 'nan' | 'inf' | '-inf'

import { EmbeddedActionsParser } from 'chevrotain';
import type { IParserErrorMessageProvider, IToken, TokenType } from 'chevrotain';
import * as T from './lexer.js';

export type TypeAst =
  /** A whole type in one TypeLit token (the usual case). */
  | { lit: IToken }
  | {
      dtype: IToken;
      /** undefined for `[*]` (unknown rank); else Int, String or '?' tokens. */
      dims: IToken[] | undefined;
    };

export type TensorAst =
  | { kind: 'dense'; start: IToken; raw: boolean; elems: IToken[] }
  | { kind: 'weight'; start: IToken; location: IToken };

export type AttrValueAst =
  | { kind: 'scalar'; tok: IToken; suffix?: IToken }
  | { kind: 'list'; start: IToken; elems: IToken[]; suffix?: IToken }
  | { kind: 'tensor'; tensor: TensorAst; type: TypeAst };

export interface AttrAst {
  key: IToken;
  value: AttrValueAst;
}

/** `range<key = number, inner_key = range<...>, ...>`. */
export interface RangeAst {
  start: IToken;
  entries: { key: IToken; value: IToken | RangeAst }[];
}

export interface OutputDeclAst {
  name: IToken;
  type: TypeAst;
  range?: RangeAst;
}

export type StmtAst =
  | { kind: 'input'; name: IToken; type: TypeAst; range?: RangeAst }
  | { kind: 'const'; name: IToken; type: TypeAst; range?: RangeAst; tensor: TensorAst; tensorType?: TypeAst }
  | { kind: 'output'; name: IToken }
  | { kind: 'meta'; key: IToken; value: IToken }
  | {
      kind: 'node';
      start: IToken;
      outputs: OutputDeclAst[];
      domain?: IToken;
      op: IToken;
      /** ValueName tokens, or Underscore for an omitted input. */
      inputs: IToken[];
      attrs: AttrAst[];
      nodeName?: IToken;
    };

export interface GraphAst {
  name: IToken;
  opsets: { domain: IToken; version: IToken }[];
  stmts: StmtAst[];
}

function describe(tok: IToken): string {
  return tok.tokenType.name === 'EOF' ? 'end of input' : `'${tok.image}'`;
}

function label(t: TokenType): string {
  return t.LABEL ?? t.name;
}

function oneOf(labels: string[]): string {
  const uniq = [...new Set(labels)];
  if (uniq.length <= 2) return uniq.join(' or ');
  return `one of ${uniq.slice(0, -1).join(', ')} or ${uniq[uniq.length - 1]}`;
}

/** Messages say what was expected and what was found; parse.ts adds line:column. */
const messages: IParserErrorMessageProvider = {
  buildMismatchTokenMessage: ({ expected, actual }) => `expected ${label(expected)} but found ${describe(actual)}`,
  buildNotAllInputParsedMessage: ({ firstRedundant }) =>
    `expected end of input after the graph's closing '}' but found ${describe(firstRedundant)}`,
  buildNoViableAltMessage: ({ expectedPathsPerAlt, actual, customUserDescription }) => {
    const expected = customUserDescription ?? oneOf(expectedPathsPerAlt.flat().map((p) => label(p[0]!)));
    return `expected ${expected} but found ${describe(actual[0]!)}`;
  },
  buildEarlyExitMessage: ({ expectedIterationPaths, actual, customUserDescription }) => {
    const expected = customUserDescription ?? oneOf(expectedIterationPaths.map((p) => label(p[0]!)));
    return `expected ${expected} but found ${describe(actual[0]!)}`;
  },
};

export class IrParser extends EmbeddedActionsParser {
  constructor() {
    super(T.allTokens, { errorMessageProvider: messages, maxLookahead: 2 });
    this.performSelfAnalysis();
  }

  readonly graph = this.RULE('graph', (): GraphAst => {
    this.CONSUME(T.KwGraph);
    const name = this.CONSUME(T.GraphName);
    const opsets: GraphAst['opsets'] = [];
    this.OPTION(() => {
      this.CONSUME(T.KwOpsets);
      this.CONSUME(T.LParen);
      this.MANY_SEP({
        SEP: T.Comma,
        DEF: () => {
          const domain = this.CONSUME(T.StringLit);
          this.CONSUME(T.Equals);
          const version = this.CONSUME(T.IntLit);
          opsets.push({ domain, version });
        },
      });
      this.CONSUME(T.RParen);
    });
    this.CONSUME(T.LBrace);
    const stmts: StmtAst[] = [];
    this.MANY(() => {
      stmts.push(this.SUBRULE(this.stmt));
    });
    this.CONSUME(T.RBrace);
    return { name, opsets, stmts };
  });

  private readonly stmt = this.RULE('stmt', (): StmtAst => {
    return this.OR([
      { ALT: () => this.SUBRULE(this.inputStmt) },
      { ALT: () => this.SUBRULE(this.constStmt) },
      { ALT: () => this.SUBRULE(this.outputStmt) },
      { ALT: () => this.SUBRULE(this.metaStmt) },
      { ALT: () => this.SUBRULE(this.nodeStmt) },
    ]);
  });

  private readonly inputStmt = this.RULE('inputStmt', (): StmtAst => {
    this.CONSUME(T.KwInput);
    const name = this.CONSUME(T.ValueName);
    this.CONSUME(T.Colon);
    const type = this.SUBRULE(this.type);
    const range = this.OPTION(() => this.SUBRULE(this.range));
    return { kind: 'input', name, type, range };
  });

  private readonly constStmt = this.RULE('constStmt', (): StmtAst => {
    this.CONSUME(T.KwConst);
    const name = this.CONSUME(T.ValueName);
    this.CONSUME(T.Colon);
    const type = this.SUBRULE(this.type);
    const range = this.OPTION2(() => this.SUBRULE(this.range));
    this.CONSUME(T.Equals);
    const tensor = this.SUBRULE(this.tensor);
    const tensorType = this.OPTION(() => {
      this.CONSUME2(T.Colon);
      return this.SUBRULE2(this.type);
    });
    return { kind: 'const', name, type, range, tensor, tensorType };
  });

  private readonly outputStmt = this.RULE('outputStmt', (): StmtAst => {
    this.CONSUME(T.KwOutput);
    return { kind: 'output', name: this.CONSUME(T.ValueName) };
  });

  private readonly metaStmt = this.RULE('metaStmt', (): StmtAst => {
    this.CONSUME(T.KwMeta);
    const key = this.CONSUME(T.KeyTok);
    this.CONSUME(T.Equals);
    return { kind: 'meta', key, value: this.CONSUME(T.StringLit) };
  });

  private readonly nodeStmt = this.RULE('nodeStmt', (): StmtAst => {
    const start = this.LA(1);
    const outputs: OutputDeclAst[] = [];
    this.OR([
      {
        ALT: () => {
          this.CONSUME(T.LParen);
          this.CONSUME(T.RParen);
        },
      },
      {
        ALT: () => {
          this.AT_LEAST_ONE_SEP({
            SEP: T.Comma,
            DEF: () => {
              const name = this.CONSUME(T.ValueName);
              this.CONSUME(T.Colon);
              const type = this.SUBRULE(this.type);
              const range = this.OPTION4(() => this.SUBRULE(this.range));
              outputs.push({ name, type, range });
            },
          });
        },
      },
    ]);
    this.CONSUME(T.Equals);
    let domain: IToken | undefined;
    let op = this.CONSUME(T.KeyTok);
    this.OPTION(() => {
      this.CONSUME(T.DoubleColon);
      domain = op;
      op = this.CONSUME2(T.KeyTok);
    });
    this.CONSUME2(T.LParen);
    const inputs: IToken[] = [];
    this.MANY_SEP({ SEP: T.Comma, DEF: () => inputs.push(this.CONSUME(T.InputTok)) });
    this.CONSUME2(T.RParen);
    const attrs: AttrAst[] = [];
    this.OPTION2(() => {
      this.CONSUME(T.LBrace);
      this.MANY_SEP2({ SEP: T.Comma, DEF: () => attrs.push(this.SUBRULE(this.attr)) });
      this.CONSUME(T.RBrace);
    });
    const nodeName = this.OPTION3(() => {
      this.CONSUME(T.KwName);
      return this.CONSUME(T.StringLit);
    });
    return { kind: 'node', start, outputs, domain, op, inputs, attrs, nodeName };
  });

  private readonly range = this.RULE('range', (): RangeAst => {
    const start = this.CONSUME(T.KwRange);
    this.CONSUME(T.LAngle);
    const entries: RangeAst['entries'] = [];
    this.MANY_SEP({
      SEP: T.Comma,
      DEF: () => {
        const key = this.CONSUME(T.KeyTok);
        this.CONSUME(T.Equals);
        const value = this.OR([
          { ALT: (): IToken | RangeAst => this.CONSUME(T.NumberTok) },
          { ALT: (): IToken | RangeAst => this.SUBRULE(this.range) },
        ]);
        entries.push({ key, value });
      },
    });
    this.CONSUME(T.RAngle);
    return { start, entries };
  });

  private readonly type = this.RULE('type', (): TypeAst => {
    return this.OR([
      { ALT: (): TypeAst => ({ lit: this.CONSUME(T.TypeLit) }) },
      { ALT: (): TypeAst => this.SUBRULE(this.spacedType) },
    ]);
  });

  /** A type the TypeLit token did not match: read piece by piece for precise errors. */
  private readonly spacedType = this.RULE('spacedType', (): TypeAst => {
    const dtype = this.CONSUME(T.Ident);
    this.CONSUME(T.LBracket);
    const dims = this.OR([
      {
        ALT: (): IToken[] | undefined => {
          this.CONSUME(T.Star);
          return undefined;
        },
      },
      {
        ALT: (): IToken[] | undefined => {
          const ds: IToken[] = [];
          this.MANY_SEP({ SEP: T.Comma, DEF: () => ds.push(this.CONSUME(T.DimTok)) });
          return ds;
        },
      },
    ]);
    this.CONSUME(T.RBracket);
    return { dtype, dims };
  });

  private readonly tensor = this.RULE('tensor', (): TensorAst => {
    return this.OR([
      {
        ALT: (): TensorAst => {
          const start = this.CONSUME(T.KwDense);
          this.CONSUME(T.LAngle);
          const raw = this.OPTION(() => this.CONSUME(T.KwRaw)) !== undefined;
          this.CONSUME(T.LBracket);
          const elems: IToken[] = [];
          this.MANY_SEP({ SEP: T.Comma, DEF: () => elems.push(this.CONSUME(T.NumberTok)) });
          this.CONSUME(T.RBracket);
          this.CONSUME(T.RAngle);
          return { kind: 'dense', start, raw, elems };
        },
      },
      {
        ALT: (): TensorAst => {
          const start = this.CONSUME(T.KwWeight);
          this.CONSUME2(T.LAngle);
          const location = this.CONSUME(T.StringLit);
          this.CONSUME2(T.RAngle);
          return { kind: 'weight', start, location };
        },
      },
    ]);
  });

  private readonly attr = this.RULE('attr', (): AttrAst => {
    const key = this.CONSUME(T.KeyTok);
    this.CONSUME(T.Equals);
    const value = this.OR([
      {
        ALT: (): AttrValueAst => {
          const tok = this.CONSUME(T.NumberTok);
          const suffix = this.OPTION(() => {
            this.CONSUME(T.Colon);
            return this.CONSUME(T.Ident);
          });
          return { kind: 'scalar', tok, suffix };
        },
      },
      { ALT: (): AttrValueAst => ({ kind: 'scalar', tok: this.CONSUME(T.StringLit) }) },
      {
        ALT: (): AttrValueAst => {
          const start = this.CONSUME(T.LBracket);
          const elems: IToken[] = [];
          this.MANY_SEP({
            SEP: T.Comma,
            DEF: () => {
              elems.push(
                this.OR2([{ ALT: () => this.CONSUME2(T.NumberTok) }, { ALT: () => this.CONSUME2(T.StringLit) }]),
              );
            },
          });
          this.CONSUME(T.RBracket);
          const suffix = this.OPTION2(() => {
            this.CONSUME2(T.Colon);
            return this.CONSUME2(T.Ident);
          });
          return { kind: 'list', start, elems, suffix };
        },
      },
      {
        ALT: (): AttrValueAst => {
          const tensor = this.SUBRULE(this.tensor);
          this.CONSUME3(T.Colon);
          return { kind: 'tensor', tensor, type: this.SUBRULE(this.type) };
        },
      },
    ]);
    return { key, value };
  });
}
