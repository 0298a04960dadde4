// The `model` section of a canonical model plan (written by compiler/model-plan.ts, read by
// runtime/model-session.ts): the model's inputs and outputs by their own names and how they map to
// the program's ciphertexts, the client-side embedding, the encrypted KV-cache inputs of decode plans,
// the approximation probes and the program the sim monitor re-evaluates. The schema is the type
// (z.infer), and the cross-field checks reject what would otherwise decrypt into the wrong places:
// layouts that disagree with the program's or do not fit the slots, blocks that leave columns of an
// output unfilled, token counts that do not match the mode, probe slot runs past the slot count, and
// names of inputs, outputs and probed values the program does not have.

import { z } from 'zod';
import { layoutsEqual } from '../../ir/fhe/layout.js';
import type { ApproxProbeRecord } from '../../ir/fhe/probe.js';
import type { FheOp, FheProgram, SlotLayout } from '../../ir/fhe/types.js';
import { numel } from '../../ir/tensor.js';
import { fileName, int, interval, layoutFits, malformed, name, nonNegInt, nonNegNumber, posInt, slotLayoutSchema, type JsonPath, sha256 } from './validate.js';

export const MODEL_PLAN_KIND = 'fhec-canonical-model';

const WHAT = 'plan';

/** One approximated nonlinearity (ir/fhe/probe.ts), plus the fit's description the compiler adds. */
const probeSchema = z.strictObject({
  op: name(),
  role: z.string(),
  fn: name(),
  /** Value names (without %) in the monitor program. */
  input: name(),
  output: name(),
  interval: interval(),
  observed: interval(),
  margin: nonNegNumber(),
  /** Runs [start, count, ...] of valid slots. */
  slots: z.array(nonNegInt()).refine((r) => r.length % 2 === 0, { error: 'expected runs [start, count, ...] (an even number of integers)' }),
  predictedMaxError: nonNegNumber(),
  // An unbounded relative error (a function crossing 0) is Infinity, which JSON writes as null.
  predictedMaxRelError: nonNegNumber()
    .nullable()
    .transform((v) => v ?? Infinity),
  depth: nonNegInt(),
  /** The output holds outputScale times the approximation (absent: 1). */
  outputScale: z.number().refine((v) => Number.isFinite(v) && v !== 0, { error: 'expected a finite non-zero number' }).optional(),
  /** The input holds alpha x + beta (absent: x). */
  inputMap: z.tuple([z.number().refine((v) => Number.isFinite(v) && v !== 0, { error: 'expected a finite non-zero number' }), z.number().refine(Number.isFinite, { error: 'expected a finite number' })]).optional(),
  /** Largest |output| for inputs inside the interval (seeds the proved refresh bounds). */
  outputBound: nonNegNumber().optional(),
  describe: z.string().optional(),
});

/** headStride: held channels per head (headSize padded to a power of two); absent = headSize. */
const kvSchema = z.strictObject({ heads: posInt(), headSize: posInt(), headStride: posInt().optional(), group: posInt() });

const outputSchema = z.strictObject({
  /** The model's own name. */
  name: name(),
  dims: z.array(nonNegInt()),
  tokens: posInt(),
  /** Columns per token as held (for a GQA-expanded KV output, heads * group * headStride). */
  width: posInt(),
  /** tokenStart: first token of the block's token group (absent: 0; several groups when the tokens do not fit one ciphertext). */
  blocks: z.array(z.strictObject({ fhe: name(), colStart: nonNegInt(), tokenStart: nonNegInt().optional(), layout: slotLayoutSchema })).min(1),
  /** KV-cache outputs [1, heads, T, headSize] held expanded: kv head h is at columns h*group*headStride.. */
  kv: kvSchema.optional(),
  /** First position held, when not 0: a generation prefill's logits hold the last position only. */
  fromToken: posInt().optional(),
});

const cacheInputSchema = z.strictObject({
  name: name(),
  fhe: name(),
  layout: slotLayoutSchema,
  heads: posInt(),
  headSize: posInt(),
  headStride: posInt().optional(),
  group: posInt(),
  /** First past token this ciphertext holds (a cache split over several ciphertexts); absent: 0. */
  tokenStart: nonNegInt().optional(),
});

const modeSchema = z.union([z.strictObject({ prefill: posInt() }), z.strictObject({ decode: posInt() })], {
  error: (iss) => `expected {"prefill": S} or {"decode": P}, got ${JSON.stringify(iss.input) ?? 'nothing'}`,
});

export const modelSectionSchema = z.strictObject({
  kind: z.literal(MODEL_PLAN_KIND),
  source: z.string(),
  mode: modeSchema,
  /** Decode plans: encrypted past key/value inputs ([1, heads, P, headSize], packed GQA-expanded). */
  cacheInputs: z.array(cacheInputSchema),
  tokens: posInt(),
  /** Model inputs the client takes, by the model's names (-1 = a dimension left symbolic). */
  inputs: z.array(z.strictObject({ name: name(), dtype: name(), dims: z.array(int().min(-1, { error: 'expected a dimension >= -1' })) })),
  /** The client-side embedding lookup: what the evaluator receives instead of ids. */
  embedding: z.strictObject({
    ids: name(),
    fhe: name(),
    layout: slotLayoutSchema,
    /** Every token group's input, when the tokens are split over several ciphertexts (the first is fhe/layout). */
    groups: z.array(z.strictObject({ fhe: name(), tokenStart: nonNegInt(), layout: slotLayoutSchema })).min(2).optional(),
    vocab: posInt(),
    dim: posInt(),
    file: fileName(),
    /** Of the table file's bytes. */
    sha256: sha256(),
    privacy: z.string(),
  }),
  outputs: z.array(outputSchema).min(1),
  probes: z.array(probeSchema),
  /** The program before refresh placement and scale management, for the sim monitor. */
  monitorProgram: z.string().min(1, { error: 'expected the monitor program text' }),
  refreshes: nonNegInt(),
  report: z.unknown().optional(),
});

export type ModelPlanMeta = z.infer<typeof modelSectionSchema>;
export type ModelOutputMeta = z.infer<typeof outputSchema>;
export type ModelProbeMeta = z.infer<typeof probeSchema>;
export type ModelCacheInput = z.infer<typeof cacheInputSchema>;

// The probe record is defined in ir/ (the lowering writes it): both must describe the same object.
const _probeTypes: [ApproxProbeRecord, ModelProbeMeta] = [{} as ModelProbeMeta, {} as ApproxProbeRecord];
void _probeTypes;

function ioOps(program: FheProgram, kind: 'input' | 'output'): Map<string, FheOp> {
  return new Map(program.ops.filter((op) => op.kind === kind).map((op) => [op.tensor!, op]));
}

function showLayout(l: SlotLayout): string {
  return `{length ${l.length}, tokens ${l.tokens}, stride ${l.stride}, period ${l.period}, copies ${l.copies}}`;
}

/** Cross-field checks of a parsed model section against its (loaded, managed) program. */
export function checkModelSection(meta: ModelPlanMeta, program: FheProgram, file: string): void {
  const slots = program.slots;
  const fail = (at: JsonPath, message: string) => malformed(file, WHAT, ['model', ...at], message);
  const inputs = ioOps(program, 'input');
  const outputs = ioOps(program, 'output');
  const modelInputs = new Set(meta.inputs.map((i) => i.name));
  /** A ciphertext the section names must be the program's, laid out as the program has it. */
  const sameAsProgram = (ops: Map<string, FheOp>, kind: string, fhe: string, layout: SlotLayout, at: JsonPath) => {
    const op = ops.get(fhe);
    if (!op) throw fail([...at, 'fhe'], `'${fhe}' is not an ${kind} of the program (its ${kind}s: ${[...ops.keys()].join(', ')})`);
    layoutFits(layout, slots, file, WHAT, ['model', ...at, 'layout']);
    if (!op.layout || !layoutsEqual(op.layout, layout)) {
      throw fail([...at, 'layout'], `${showLayout(layout)} is not the layout of the program's ${kind} '${fhe}' ${op.layout ? showLayout(op.layout) : '(none)'}`);
    }
  };

  const past = 'decode' in meta.mode ? meta.mode.decode : 0;
  if ('prefill' in meta.mode && meta.mode.prefill !== meta.tokens) throw fail(['mode', 'prefill'], `is ${meta.mode.prefill} but the plan takes ${meta.tokens} tokens`);
  if ('prefill' in meta.mode && meta.cacheInputs.length > 0) throw fail(['cacheInputs'], 'a prefill plan takes no encrypted cache');

  const e = meta.embedding;
  if (!modelInputs.has(e.ids)) throw fail(['embedding', 'ids'], `'${e.ids}' is not one of the model's inputs`);
  sameAsProgram(inputs, 'input', e.fhe, e.layout, ['embedding']);
  const eg = e.groups ?? [{ fhe: e.fhe, tokenStart: 0, layout: e.layout }];
  if (eg[0]!.fhe !== e.fhe || !layoutsEqual(eg[0]!.layout, e.layout)) throw fail(['embedding', 'groups', 0], 'is not the embedding\'s fhe and layout');
  let embedded = 0;
  eg.forEach((g, i) => {
    sameAsProgram(inputs, 'input', g.fhe, g.layout, ['embedding', 'groups', i]);
    if (g.tokenStart !== embedded) throw fail(['embedding', 'groups', i, 'tokenStart'], `is ${g.tokenStart}, but the groups before it end at token ${embedded}`);
    embedded += g.layout.tokens;
    if (g.layout.length !== e.dim || (i === eg.length - 1 && embedded !== meta.tokens)) {
      throw fail(e.groups ? ['embedding', 'groups', i, 'layout'] : ['embedding', 'layout'], `holds ${embedded} tokens of ${g.layout.length} values, the plan embeds ${meta.tokens} tokens of ${e.dim}`);
    }
  });

  const fed = new Set(eg.map((g) => g.fhe));
  meta.cacheInputs.forEach((c, i) => {
    if (!modelInputs.has(c.name)) throw fail(['cacheInputs', i, 'name'], `'${c.name}' is not one of the model's inputs`);
    sameAsProgram(inputs, 'input', c.fhe, c.layout, ['cacheInputs', i]);
    const cs = c.headStride ?? c.headSize;
    if (cs < c.headSize) throw fail(['cacheInputs', i, 'headStride'], `is ${cs}, less than headSize ${c.headSize}`);
    if (c.layout.length !== c.heads * c.group * cs) {
      throw fail(['cacheInputs', i, 'layout', 'length'], `is ${c.layout.length}, but heads * group * ${c.headStride ? 'headStride' : 'headSize'} is ${c.heads * c.group * cs}`);
    }
    const split = meta.cacheInputs.filter((x) => x.name === c.name);
    if (split.length === 1 && c.layout.tokens !== past) throw fail(['cacheInputs', i, 'layout', 'tokens'], `is ${c.layout.tokens}, but the plan decodes after ${past} tokens`);
    // Split caches: ciphertexts in token order tile 0..past-1.
    const before = split.slice(0, split.indexOf(c)).reduce((n, x) => n + x.layout.tokens, 0);
    if ((c.tokenStart ?? 0) !== before) throw fail(['cacheInputs', i, 'tokenStart'], `is ${c.tokenStart ?? 0}, but the ciphertexts of '${c.name}' before it end at token ${before}`);
    if (split.indexOf(c) === split.length - 1 && before + c.layout.tokens !== past) throw fail(['cacheInputs', i, 'layout', 'tokens'], `leaves '${c.name}' with ${before + c.layout.tokens} tokens, but the plan decodes after ${past}`);
    fed.add(c.fhe);
  });
  for (const n of inputs.keys()) if (!fed.has(n)) throw fail([], `the program's input '${n}' is neither the embedding nor a cache input`);

  const seen = new Map<string, string>();
  meta.outputs.forEach((o, i) => {
    const at = ['outputs', i];
    o.blocks.forEach((b, j) => {
      const prev = seen.get(b.fhe);
      if (prev) throw fail([...at, 'blocks', j, 'fhe'], `'${b.fhe}' is already a block of ${prev}`);
      seen.set(b.fhe, `outputs[${i}]`);
      sameAsProgram(outputs, 'output', b.fhe, b.layout, [...at, 'blocks', j]);
      // One token group: every block holds all the tokens.
      if (o.blocks.every((x) => !x.tokenStart) && b.layout.tokens !== o.tokens) throw fail([...at, 'blocks', j, 'layout', 'tokens'], `is ${b.layout.tokens}, the output has ${o.tokens} tokens`);
    });
    // Token groups must tile 0..tokens-1, each with one token count.
    const groups = new Map<number, number>();
    o.blocks.forEach((b, j) => {
      const t = groups.get(b.tokenStart ?? 0);
      if (t !== undefined && t !== b.layout.tokens) throw fail([...at, 'blocks', j, 'layout', 'tokens'], `is ${b.layout.tokens}, another block of its token group holds ${t}`);
      groups.set(b.tokenStart ?? 0, b.layout.tokens);
    });
    let tok = 0;
    for (const [start, count] of [...groups].sort((x, y) => x[0] - y[0])) {
      if (start !== tok) throw fail([...at, 'blocks'], `token groups leave tokens ${tok}..${start - 1} out`);
      tok += count;
    }
    if (tok !== o.tokens) throw fail([...at, 'blocks'], `hold ${tok} tokens, the output has ${o.tokens}`);
    if (o.kv) {
      const { heads, headSize, group } = o.kv;
      const hs = o.kv.headStride ?? headSize;
      if (hs < headSize) throw fail([...at, 'kv', 'headStride'], `is ${hs}, less than headSize ${headSize}`);
      if (o.tokens !== past + meta.tokens) throw fail([...at, 'tokens'], `is ${o.tokens}, but a cache output holds past + new = ${past + meta.tokens} tokens`);
      if (o.dims.join(',') !== [1, heads, o.tokens, headSize].join(',')) throw fail([...at, 'dims'], `[${o.dims.join(', ')}] is not [1, heads ${heads}, tokens ${o.tokens}, headSize ${headSize}]`);
      if (o.width !== heads * group * hs) throw fail([...at, 'width'], `is ${o.width}, but heads * group * ${o.kv.headStride ? 'headStride' : 'headSize'} is ${heads * group * hs}`);
      if (o.blocks.length !== groups.size) throw fail([...at, 'blocks'], `a cache output is held in one block per token group, got ${o.blocks.length} for ${groups.size}`);
      o.blocks.forEach((b, j) => {
        if (b.colStart !== 0 || b.layout.length !== o.width) throw fail([...at, 'blocks', j], `must hold columns 0..${o.width - 1}`);
      });
      return;
    }
    if (o.fromToken !== undefined && o.fromToken + o.tokens !== meta.tokens) {
      throw fail([...at, 'fromToken'], `is ${o.fromToken}: with ${o.tokens} token(s) held the output ends at token ${o.fromToken + o.tokens - 1}, but the plan takes ${meta.tokens}`);
    }
    if (numel(o.dims) !== o.tokens * o.width) throw fail([...at, 'dims'], `[${o.dims.join(', ')}] has ${numel(o.dims)} elements, but tokens * width is ${o.tokens * o.width}`);
    // Column blocks of each token group must tile 0..width-1: a gap would decrypt as zeros, an overlap overwrites.
    for (const start of groups.keys()) {
      const order = o.blocks.map((b, j) => ({ b, j })).filter((x) => (x.b.tokenStart ?? 0) === start).sort((x, y) => x.b.colStart - y.b.colStart);
      let col = 0;
      for (const { b, j } of order) {
        if (b.colStart !== col) throw fail([...at, 'blocks', j, 'colStart'], `is ${b.colStart}, but the blocks before it end at column ${col}`);
        col += b.layout.length;
      }
      if (col !== o.width) throw fail([...at, 'blocks'], `cover columns 0..${col - 1}, but the output is ${o.width} wide`);
    }
  });
  for (const n of outputs.keys()) if (!seen.has(n)) throw fail(['outputs'], `no output block is the program's output '${n}'`);

  meta.probes.forEach((p, i) => {
    for (let r = 0; r < p.slots.length; r += 2) {
      const [start, count] = [p.slots[r]!, p.slots[r + 1]!];
      if (count < 1 || start + count > slots) throw fail(['probes', i, 'slots', r], `run [${start}, ${count}] is not within the ${slots} slots`);
    }
  });
}

/** The monitor program must evaluate on the plan's inputs and have every probed value. */
export function checkMonitorProgram(meta: ModelPlanMeta, monitor: FheProgram, slots: number, file: string): void {
  const fail = (at: JsonPath, message: string) => malformed(file, WHAT, ['model', ...at], message);
  if (monitor.slots !== slots) throw fail(['monitorProgram'], `has ${monitor.slots} slots, the plan ${slots}`);
  const fed = new Set([meta.embedding.fhe, ...(meta.embedding.groups ?? []).map((g) => g.fhe), ...meta.cacheInputs.map((c) => c.fhe)]);
  for (const op of monitor.ops) {
    if (op.kind === 'input' && !fed.has(op.tensor!)) throw fail(['monitorProgram'], `input '${op.tensor}' is neither the embedding nor a cache input`);
  }
  const values = new Set(monitor.ops.flatMap((op) => (op.result ? [op.result.name] : [])));
  meta.probes.forEach((p, i) => {
    for (const k of ['input', 'output'] as const) {
      if (!values.has(p[k])) throw fail(['probes', i, k], `%${p[k]} is not a value of the monitor program`);
    }
  });
}
