// `fhec compile --emit ts`: a managed FHE program as a TypeScript module, generated with ts-morph. The
// module runs the same computation through the runtime's CkksEvaluator interface as straight-line code,
// one statement per FHE op in execution order (runtime/refresh/rounds.ts; so on the simulator it draws
// the same noise as executeProgram and its results are bit for bit the same), with a comment giving each op's IR text,
// level and scale. It frees every value after its last use, as executeProgram does, so SEAL's wasm heap
// holds only live ciphertexts; `refresh` ops go to a CkksRefresher the caller passes in. Big programs
// are split into functions of a bounded number of ops so tsc stays fast. The module imports only types
// from the runtime (`fhec/runtime`); constants longer than the plan's inline limit are read from the
// plan's weights sidecar by offset, so the module stays small.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { IndentationText, Project, QuoteKind, StructureKind, VariableDeclarationKind, type StatementStructures } from 'ts-morph';
import { FhecError } from '../../ir/errors.js';
import { formatNumber, layoutText, opHead, printFhe } from '../../ir/fhe/print.js';
import type { FheConstant, FheOp, FheProgram, FheType, FheValue, SlotLayout } from '../../ir/fhe/types.js';
import { verifyFhe } from '../../ir/fhe/verify.js';
import { executionOrder } from '../../runtime/refresh/rounds.js';

export interface EmitTypeScriptOptions {
  /**
   * The plan written for this program by writePlan. The module names the plan and its weights sidecar,
   * and the emitter checks that the plan holds exactly this program with the same sidecar offsets.
   */
  planFile?: string;
  /** Shown in the module's header; default: the program's name. */
  moduleName?: string;
  /** Module specifier the runtime types are imported from; default 'fhec/runtime'. */
  runtimeModule?: string;
  /** Most FHE ops per generated function; default 250. Longer programs are split into parts. */
  opsPerFunction?: number;
}

/** Dense constants longer than this live in the weights sidecar; the same rule as runtime/plan/plan.ts. */
const PLAN_INLINE_LIMIT = 16;
// Measured with tsc 5.9 on 18k ops: 250 per function type-checks in 3.7 s, 1000 in 9.8 s, one function in 460 s.
const DEFAULT_OPS_PER_FUNCTION = 250;

/** Where each constant's values are found at run time. */
type ConstantSource =
  | { kind: 'splat'; value: number }
  | { kind: 'inline'; ident: string; values: ArrayLike<number> }
  | { kind: 'weights'; offset: number; length: number };

/**
 * Sidecar ranges of the program's constants, assigned exactly as writePlan assigns them: dense
 * constants longer than the inline limit, in declaration order, packed from offset 0.
 */
export function weightsLayout(program: FheProgram): { ranges: Map<string, { offset: number; length: number }>; count: number } {
  const ranges = new Map<string, { offset: number; length: number }>();
  let offset = 0;
  let count = 0;
  for (const c of program.constants.values()) {
    if (c.data.kind === 'dense' && c.data.values.length > PLAN_INLINE_LIMIT) {
      ranges.set(c.name, { offset, length: c.data.values.length });
      offset += c.data.values.length;
    } else if (c.data.kind === 'weights') {
      ranges.set(c.name, { offset: c.data.offset, length: c.data.length });
      count = Math.max(count, c.data.offset + c.data.length);
    }
  }
  return { ranges, count: Math.max(count, offset) };
}

/** The program as writePlan prints it (large constants replaced by their sidecar ranges). */
function planText(program: FheProgram, ranges: Map<string, { offset: number; length: number }>): string {
  const constants = new Map<string, FheConstant>();
  for (const c of program.constants.values()) {
    const r = ranges.get(c.name);
    constants.set(c.name, r ? { name: c.name, data: { kind: 'weights', offset: r.offset, length: r.length } } : c);
  }
  return printFhe({ ...program, constants });
}

/** Checks the plan holds this program; returns the sha256 it records for its weights sidecar. */
function checkAgainstPlan(planFile: string, program: FheProgram, ranges: Map<string, { offset: number; length: number }>): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(planFile, 'utf8'));
  } catch (e) {
    throw new FhecError(`cannot read the plan to emit TypeScript for (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { file: planFile });
  }
  const text = (doc as { program?: unknown } | null)?.program;
  if (typeof text !== 'string') throw new FhecError('malformed plan: no program text', { file: planFile, field: 'program' });
  if (text !== planText(program, ranges)) {
    throw new FhecError('the plan holds another program than the one being emitted (write the plan from the same program)', { file: planFile });
  }
  const sha = (doc as { weights?: { sha256?: unknown } }).weights?.sha256;
  return typeof sha === 'string' ? sha : undefined;
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const RESERVED = new Set(['break', 'case', 'catch', 'class', 'const', 'continue', 'debugger', 'default', 'delete', 'do', 'else', 'enum',
  'export', 'extends', 'false', 'finally', 'for', 'function', 'if', 'import', 'in', 'instanceof', 'new', 'null', 'return', 'super',
  'switch', 'this', 'throw', 'true', 'try', 'typeof', 'var', 'void', 'while', 'with', 'yield', 'let', 'static', 'implements',
  'interface', 'package', 'private', 'protected', 'public', 'await']);

/** A property name as written in an object type or literal. */
function propertyName(name: string): string {
  return IDENT.test(name) ? name : quote(name);
}

/** `obj.name` or `obj['name']`. */
function propertyAccess(obj: string, name: string): string {
  return IDENT.test(name) && !RESERVED.has(name) ? `${obj}.${name}` : `${obj}[${quote(name)}]`;
}

export function quote(s: string): string {
  return `'${JSON.stringify(s).slice(1, -1).replace(/\\"/g, '"').replace(/'/g, "\\'")}'`;
}

function numberLiteral(x: number): string {
  return formatNumber(x);
}

/** "2^40" for an exact power of two, else "~2^39.9999". */
function scaleText(scale: number): string {
  const l = Math.log2(scale);
  return Number.isInteger(l) && 2 ** l === scale ? `2^${l}` : `~2^${l.toFixed(4)}`;
}

function typeText(t: FheType): string {
  const size = t.kind === 'ct' && t.size !== 2 ? `, size ${t.size}` : '';
  return `${t.kind} at level ${t.level}, scale ${scaleText(t.scale!)} (${numberLiteral(t.scale!)})${size}`;
}

function layoutLiteral(l: SlotLayout): string {
  return `{ length: ${l.length}, tokens: ${l.tokens}, stride: ${l.stride}, period: ${l.period}, copies: ${l.copies} }`;
}

/** The op's IR line, with its result's level and scale spelled out. */
export function opComment(op: FheOp): string {
  return op.kind === 'output' ? opHead(op) : `${opHead(op)}: ${typeText(op.result!.type)}`;
}

export const METHOD: Partial<Record<FheOp['kind'], string>> = {
  add: 'add',
  sub: 'sub',
  negate: 'negate',
  add_plain: 'addPlain',
  mul_plain: 'mulPlain',
  mul: 'mul',
  relinearize: 'relinearize',
  rescale: 'rescale',
  mod_switch: 'modSwitch',
  rotate: 'rotate',
};

interface Part {
  /** The ops with their index in the program. */
  ops: { op: FheOp; index: number }[];
  /** Values defined before this part and used in it, in definition order. */
  liveIn: string[];
  /** Values defined in this part and needed after it (by a later part, or as an output). */
  liveOut: string[];
  usesInputs: boolean;
  usesWeights: boolean;
  usesRefresher: boolean;
}

/** Everything the generator decides before writing code. */
class ModuleModel {
  readonly idents = new Map<string, string>();
  readonly sources = new Map<string, ConstantSource>();
  readonly lastUse = new Map<string, number>();
  readonly defIndex = new Map<string, number>();
  readonly inputs: FheOp[] = [];
  readonly refreshes: boolean;
  readonly outputs: FheOp[] = [];
  /** Values the caller owns (inputs) or receives (outputs): never freed by the module. */
  readonly kept = new Set<string>();
  readonly helpers = new Set<'splat' | 'dense' | 'fromWeights'>();
  readonly weightCount: number;
  readonly ranges: Map<string, { offset: number; length: number }>;

  constructor(readonly program: FheProgram) {
    const layout = weightsLayout(program);
    this.ranges = layout.ranges;
    this.weightCount = layout.count;
    this.refreshes = program.ops.some((op) => op.kind === 'refresh');
    const used = new Set<string>();
    for (const c of program.constants.values()) {
      const r = layout.ranges.get(c.name);
      if (r) this.sources.set(c.name, { kind: 'weights', ...r });
      else if (c.data.kind === 'splat') this.sources.set(c.name, { kind: 'splat', value: c.data.value });
      else if (c.data.kind === 'dense') {
        let ident = `c_${c.name.replace(/[^A-Za-z0-9_]/g, '_')}`;
        for (let i = 1; used.has(ident); i++) ident = `c_${c.name.replace(/[^A-Za-z0-9_]/g, '_')}_${i}`;
        used.add(ident);
        this.sources.set(c.name, { kind: 'inline', ident, values: c.data.values });
      }
    }
    program.ops.forEach((op, i) => {
      for (const a of op.args) this.lastUse.set(a.name, i);
      if (op.result) {
        this.defIndex.set(op.result.name, i);
        this.idents.set(op.result.name, `v${this.idents.size}`);
      }
      if (op.kind === 'input') {
        this.inputs.push(op);
        this.kept.add(op.result!.name);
      }
      if (op.kind === 'output') {
        this.outputs.push(op);
        this.kept.add(op.args[0]!.name);
      }
      if (op.kind === 'encode') {
        const s = this.sources.get(op.constant!)!;
        this.helpers.add(s.kind === 'inline' ? 'dense' : s.kind === 'weights' ? 'fromWeights' : 'splat');
        if (s.kind === 'weights') this.helpers.add('dense');
      }
    });
  }

  ident(v: FheValue): string {
    return this.idents.get(v.name)!;
  }

  /**
   * The ops other than outputs in functions of at most `size` ops (outputs are returned by run, and
   * their comments stay there).
   */
  parts(size: number): Part[] {
    const outputs = new Set(this.outputs.map((o) => o.args[0]!.name));
    const body = this.program.ops.map((op, index) => ({ op, index })).filter(({ op }) => op.kind !== 'output');
    const parts: Part[] = [];
    for (let k = 0; k < body.length; k += size) {
      const slice = body.slice(k, k + size);
      const start = slice[0]!.index;
      const end = slice[slice.length - 1]!.index + 1;
      const liveIn = new Set<string>();
      const liveOut: string[] = [];
      for (const { op } of slice) {
        for (const a of op.args) if (this.defIndex.get(a.name)! < start) liveIn.add(a.name);
        const r = op.result!.name;
        if ((this.lastUse.get(r) ?? -1) >= end || outputs.has(r)) liveOut.push(r);
      }
      parts.push({
        ops: slice,
        liveIn: [...liveIn].sort((a, b) => this.defIndex.get(a)! - this.defIndex.get(b)!),
        liveOut,
        usesInputs: slice.some(({ op }) => op.kind === 'input'),
        usesWeights: slice.some(({ op }) => op.kind === 'encode' && this.sources.get(op.constant!)!.kind === 'weights'),
        usesRefresher: slice.some(({ op }) => op.kind === 'refresh'),
      });
    }
    return parts;
  }

  /** Comment and statement(s) of op i: the op itself, then frees of values that die here. */
  opLines(op: FheOp, i: number): string[] {
    const lines = [`// ${opComment(op)}`];
    if (op.kind === 'output') return lines;
    const args = op.args.map((a) => this.ident(a));
    let call: string;
    if (op.kind === 'input') {
      const t = op.result!.type;
      call = `input(ev, ${propertyAccess('inputs', op.tensor!)}, ${quote(op.tensor!)}, ${t.level}, ${numberLiteral(t.scale!)})`;
    } else if (op.kind === 'encode') {
      const t = op.result!.type;
      const s = this.sources.get(op.constant!)!;
      const data =
        s.kind === 'splat' ? `splat(${numberLiteral(s.value)})` : s.kind === 'inline' ? `dense(${s.ident})` : `fromWeights(weights, ${s.offset}, ${s.length})`;
      call = `ev.encode(${data}, ${t.level}, ${numberLiteral(t.scale!)})`;
    } else if (op.kind === 'rotate') {
      call = `ev.rotate(${args[0]}, ${op.step})`;
    } else if (op.kind === 'refresh') {
      const t = op.result!.type;
      call = `refresh(refresher, ev, ${args[0]}, ${t.level}, ${numberLiteral(t.scale!)}, ${quote(op.args[0]!.name)})`;
    } else {
      call = `ev.${METHOD[op.kind]}(${args.join(', ')})`;
    }
    lines.push(`const ${this.ident(op.result!)} = ${call};`);
    // Same freeing as executeProgram: each operand after its last use, an unused result at once.
    for (const a of new Set(op.args.map((x) => x.name))) {
      if (this.lastUse.get(a) === i && !this.kept.has(a)) lines.push(`ev.free(${this.idents.get(a)});`);
    }
    const r = op.result!.name;
    if (!this.lastUse.has(r) && !this.kept.has(r)) lines.push(`ev.free(${this.idents.get(r)});`);
    return lines;
  }
}

function partFunction(model: ModuleModel, part: Part, index: number): StatementStructures {
  const params = [{ name: 'ev', type: 'CkksEvaluator' }];
  if (part.usesInputs) params.push({ name: 'inputs', type: 'Inputs' });
  if (part.usesWeights) params.push({ name: 'weights', type: 'PlanWeights' });
  if (part.usesRefresher) params.push({ name: 'refresher', type: 'CkksRefresher' });
  for (const v of part.liveIn) params.push({ name: model.idents.get(v)!, type: 'Ciphertext' });
  const body: string[] = [];
  for (const { op, index: i } of part.ops) body.push(...model.opLines(op, i));
  const out = part.liveOut.map((v) => model.idents.get(v)!);
  if (out.length > 0) body.push(`return [${out.join(', ')}];`);
  return {
    kind: StructureKind.Function,
    name: `part${index + 1}`,
    docs: [`Ops ${part.ops[0]!.index}..${part.ops[part.ops.length - 1]!.index} of the program.`],
    parameters: params,
    returnType: out.length > 0 ? `[${out.map(() => 'Ciphertext').join(', ')}]` : 'void',
    statements: body,
  };
}

function helperFunctions(model: ModuleModel): StatementStructures[] {
  const out: StatementStructures[] = [];
  if (model.inputs.length > 0) {
    out.push({
      kind: StructureKind.Function,
      name: 'input',
      docs: ['A caller-supplied input, checked against the level and scale the program was typed for.'],
      parameters: [
        { name: 'ev', type: 'CkksEvaluator' },
        { name: 'ct', type: 'Ciphertext | undefined' },
        { name: 'name', type: 'string' },
        { name: 'level', type: 'number' },
        { name: 'scale', type: 'number' },
      ],
      returnType: 'Ciphertext',
      statements: [
        'if (ct === undefined) throw new Error(`no ciphertext given for input "${name}"`);',
        'if (ev.levelOf(ct) !== level) throw new Error(`input "${name}" is at level ${ev.levelOf(ct)}, the program expects ${level}`);',
        'if (ev.scaleOf(ct) !== scale) throw new Error(`input "${name}" has scale ${ev.scaleOf(ct)}, the program expects ${scale}`);',
        'return ct;',
      ],
    });
  }
  if (model.refreshes) {
    out.push({
      kind: StructureKind.Function,
      name: 'refresh',
      docs: ['A refresh (client-aided round trip or bootstrap), checked against the level and scale the program expects.'],
      parameters: [
        { name: 'refresher', type: 'CkksRefresher' },
        { name: 'ev', type: 'CkksEvaluator' },
        { name: 'ct', type: 'Ciphertext' },
        { name: 'level', type: 'number' },
        { name: 'scale', type: 'number' },
        { name: 'name', type: 'string' },
      ],
      returnType: 'Ciphertext',
      statements: [
        'const fresh = refresher.refresh(ct, scale, name);',
        'if (ev.levelOf(fresh) !== level || ev.scaleOf(fresh) !== scale) {',
        '  const got = `level ${ev.levelOf(fresh)} and scale ${ev.scaleOf(fresh)}`;',
        '  ev.free(fresh);',
        '  throw new Error(`refresh of %${name} gave ${got}, the program expects level ${level} and scale ${scale}`);',
        '}',
        'return fresh;',
      ],
    });
  }
  if (model.helpers.has('splat')) {
    out.push({
      kind: StructureKind.Function,
      name: 'splat',
      docs: ['Every slot holding `value`.'],
      parameters: [{ name: 'value', type: 'number' }],
      returnType: 'Float64Array',
      statements: ['return new Float64Array(PROGRAM.slots).fill(value);'],
    });
  }
  if (model.helpers.has('dense')) {
    out.push({
      kind: StructureKind.Function,
      name: 'dense',
      docs: ['Constant values, zero-padded to the slot count.'],
      parameters: [{ name: 'values', type: 'ArrayLike<number>' }],
      returnType: 'Float64Array',
      statements: ['const v = new Float64Array(PROGRAM.slots);', 'v.set(values);', 'return v;'],
    });
  }
  if (model.helpers.has('fromWeights')) {
    out.push({
      kind: StructureKind.Function,
      name: 'fromWeights',
      docs: ['A constant stored in the weights sidecar at [offset, offset + length).'],
      parameters: [
        { name: 'weights', type: 'PlanWeights' },
        { name: 'offset', type: 'number' },
        { name: 'length', type: 'number' },
      ],
      returnType: 'Float64Array',
      statements: ['return dense(weights.subarray(offset, offset + length));'],
    });
  }
  return out;
}

/** `export const PROGRAM = {...} as const;` with its doc comment (written as text: ts-morph would re-indent it). */
function programStatement(model: ModuleModel, planFile: string | undefined, weightsSha256: string | undefined): string {
  const p = model.program;
  const chain = p.chain!;
  const lines = [
    '/** What the program was compiled for: parameters, and where each input and output lives. */',
    'export const PROGRAM = {',
    `  name: ${quote(p.name)},`,
    `  ringDegree: ${chain.ringDegree},`,
    `  slots: ${p.slots},`,
    `  /** Data primes q_0..q_L of the modulus chain (the special prime is not part of the program's type). */`,
    `  primes: [${chain.primes.map((q) => quote(String(q))).join(', ')}],`,
  ];
  if (planFile) {
    const base = path.basename(planFile);
    lines.push(`  plan: ${quote(base)},`);
    lines.push(`  weightsFile: ${quote(base.replace(/\.json$/, '') + '.weights.bin')},`);
    if (weightsSha256) lines.push(`  /** sha256 of the weights sidecar, as the plan records it: decodeWeights checks it. */`, `  weightsSha256: ${quote(weightsSha256)},`);
  }
  lines.push('  /** Float64 values in the weights sidecar. */');
  lines.push(`  weightCount: ${model.weightCount},`);
  const tensors = (key: string, ops: FheOp[], value: (op: FheOp) => FheValue) => {
    if (ops.length === 0) return void lines.push(`  ${key}: {},`);
    lines.push(`  ${key}: {`);
    for (const op of ops) {
      const t = value(op).type;
      lines.push(`    ${propertyName(op.tensor!)}: { level: ${t.level}, scale: ${numberLiteral(t.scale!)}, layout: ${layoutLiteral(op.layout!)} },`);
    }
    lines.push('  },');
  };
  tensors('inputs', model.inputs, (op) => op.result!);
  tensors('outputs', model.outputs, (op) => op.args[0]!);
  lines.push('} as const;');
  return lines.join('\n');
}

/**
 * The TypeScript module for a managed FHE program. It exports `PROGRAM` (parameters and the level,
 * scale and slot layout of each input and output), the `Inputs`/`Outputs` types, `decodeWeights` and
 * `run(evaluator, inputs, weights)`.
 */
export function emitTypeScript(program: FheProgram, opts: EmitTypeScriptOptions = {}): string {
  verifyFhe(program, { managed: true });
  const perFunction = opts.opsPerFunction ?? DEFAULT_OPS_PER_FUNCTION;
  if (!Number.isInteger(perFunction) || perFunction < 1) throw new FhecError(`ops per function must be a positive integer, got ${perFunction}`);
  // Execution order (refresh round by round), the order executeProgram runs and the key holder expects.
  const inOrder: FheProgram = { ...program, ops: executionOrder(program).map((i) => program.ops[i]!) };
  const model = new ModuleModel(inOrder);
  const weightsSha256 = opts.planFile ? checkAgainstPlan(opts.planFile, program, model.ranges) : undefined;
  const runtime = opts.runtimeModule ?? 'fhec/runtime';
  const chain = program.chain!;
  const title = opts.moduleName ?? program.name;

  const header = [
    `// ${title}: FHE program @${program.name} as TypeScript, generated by fhec from the managed program; do not edit.`,
    `// N=${chain.ringDegree}, ${program.slots} slots, ${chain.primes.length} data primes, ${program.ops.length} ops.` +
      (opts.planFile ? ` Plan: ${path.basename(opts.planFile)}.` : ''),
    '// run() performs the ops of the program in order on a CkksEvaluator (one statement per op, with the',
    "// op's IR text, level and scale); weight vectors come from the plan's weights sidecar (decodeWeights).",
  ].join('\n');

  const statements: (string | StatementStructures)[] = [header];
  statements.push({
    kind: StructureKind.ImportDeclaration,
    isTypeOnly: true,
    moduleSpecifier: runtime,
    namedImports: model.refreshes ? ['CkksEvaluator', 'CkksHandle', 'CkksRefresher'] : ['CkksEvaluator', 'CkksHandle'],
  });
  if (weightsSha256) statements.push({ kind: StructureKind.ImportDeclaration, moduleSpecifier: 'node:crypto', namedImports: ['createHash'] });
  statements.push({
    kind: StructureKind.TypeAlias,
    name: 'Ciphertext',
    isExported: true,
    docs: ['An evaluator-side ciphertext (or encoded plaintext) of the runtime.'],
    type: 'CkksHandle',
  });
  statements.push({
    kind: StructureKind.TypeAlias,
    name: 'PlanWeights',
    isExported: true,
    docs: ["The plan's weights sidecar as float64 values (see decodeWeights)."],
    type: 'Float64Array',
  });
  statements.push(programStatement(model, opts.planFile, weightsSha256));
  const tensorProps = (ops: FheOp[], value: (op: FheOp) => FheValue) =>
    ops.map((op) => ({
      name: propertyName(op.tensor!),
      type: 'Ciphertext',
      docs: [`${layoutText(op.layout!)}, ${typeText(value(op).type)}`],
    }));
  statements.push({
    kind: StructureKind.Interface,
    name: 'Inputs',
    isExported: true,
    docs: ['Encrypted inputs, at the level and scale in PROGRAM.inputs.'],
    properties: tensorProps(model.inputs, (op) => op.result!),
  });
  statements.push({
    kind: StructureKind.Interface,
    name: 'Outputs',
    isExported: true,
    docs: ['Encrypted outputs; the caller owns (and frees) them. An output that is an input is the caller\'s own handle.'],
    properties: tensorProps(model.outputs, (op) => op.args[0]!),
  });

  const usedInline = new Set(program.ops.filter((op) => op.kind === 'encode').map((op) => op.constant!));
  for (const [name, s] of model.sources) {
    if (s.kind !== 'inline' || !usedInline.has(name)) continue;
    statements.push({
      kind: StructureKind.VariableStatement,
      declarationKind: VariableDeclarationKind.Const,
      docs: [`@${name}: a short constant, inline as in the plan.`],
      declarations: [{ name: s.ident, type: 'readonly number[]', initializer: `[${Array.from(s.values, numberLiteral).join(', ')}]` }],
    });
  }

  statements.push({
    kind: StructureKind.Function,
    name: 'decodeWeights',
    isExported: true,
    docs: [`Reads the plan's weights sidecar (float64 little-endian) and checks its size${weightsSha256 ? ' and its sha256' : ''}.`],
    parameters: [{ name: 'bytes', type: 'Uint8Array' }],
    returnType: 'PlanWeights',
    statements: [
      'if (bytes.length !== PROGRAM.weightCount * 8) {',
      '  throw new Error(`weights sidecar has ${bytes.length} bytes, this module expects ${PROGRAM.weightCount * 8}`);',
      '}',
      ...(weightsSha256
        ? [
            "if (createHash('sha256').update(bytes).digest('hex') !== PROGRAM.weightsSha256) {",
            "  throw new Error(`weights sidecar ${PROGRAM.weightsFile} does not match the sha256 its plan records (altered or from another plan)`);",
            '}',
          ]
        : []),
      'const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);',
      'const out = new Float64Array(PROGRAM.weightCount);',
      'for (let i = 0; i < out.length; i++) out[i] = view.getFloat64(8 * i, true);',
      'return out;',
    ],
  });

  const ops = inOrder.ops;
  const checks = [
    'const params = evaluator.params;',
    "if (params.ringDegree !== PROGRAM.ringDegree || params.primes.slice(0, -1).join(',') !== PROGRAM.primes.join(',')) {",
    "  throw new Error('the evaluator has other CKKS parameters than the program was compiled for');",
    '}',
    'if (weights.length !== PROGRAM.weightCount) {',
    '  throw new Error(`weights have ${weights.length} values, the program expects ${PROGRAM.weightCount}`);',
    '}',
  ];
  const ret = `return { ${model.outputs.map((o) => `${propertyName(o.tensor!)}: ${model.ident(o.args[0]!)}`).join(', ')} };`;
  const runBody: string[] = [...checks, 'const ev = evaluator;'];
  const partFns: StatementStructures[] = [];
  if (ops.length <= perFunction) {
    ops.forEach((op, i) => runBody.push(...model.opLines(op, i)));
  } else {
    model.parts(perFunction).forEach((part, k) => {
      partFns.push(partFunction(model, part, k));
      const args = ['ev'];
      if (part.usesInputs) args.push('inputs');
      if (part.usesWeights) args.push('weights');
      if (part.usesRefresher) args.push('refresher');
      args.push(...part.liveIn.map((v) => model.idents.get(v)!));
      const call = `part${k + 1}(${args.join(', ')})`;
      const out = part.liveOut.map((v) => model.idents.get(v)!);
      runBody.push(out.length === 0 ? `${call};` : `const [${out.join(', ')}] = ${call};`);
    });
    for (const op of model.outputs) runBody.push(`// ${opComment(op)}`);
  }
  runBody.push(ret);
  const usesInputs = model.inputs.length > 0;
  statements.push({
    kind: StructureKind.Function,
    name: 'run',
    isExported: true,
    isAsync: true,
    docs: [
      'Runs the program on `evaluator` (made from the client\'s evaluation keys for these parameters).\n' +
        'The inputs stay owned by the caller; the outputs are new handles the caller frees.' +
        (model.refreshes ? '\n`refresher` carries out the refresh ops (the key holder round trip, or a bootstrap).' : ''),
    ],
    parameters: [
      { name: 'evaluator', type: 'CkksEvaluator' },
      { name: usesInputs ? 'inputs' : '_inputs', type: 'Inputs' },
      { name: 'weights', type: 'PlanWeights' },
      ...(model.refreshes ? [{ name: 'refresher', type: 'CkksRefresher' }] : []),
    ],
    returnType: 'Promise<Outputs>',
    statements: runBody,
  });
  statements.push(...partFns);
  statements.push(...helperFunctions(model));

  const project = new Project({
    useInMemoryFileSystem: true,
    manipulationSettings: { indentationText: IndentationText.TwoSpaces, quoteKind: QuoteKind.Single },
  });
  const file = project.createSourceFile('module.ts', { statements });
  return file.getFullText();
}
