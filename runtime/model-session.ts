// The client side of a compiled canonical model (a plan from compiler/model-plan.ts): token ids in,
// embedding lookup (the client holds the embedding table; the evaluator only ever sees encrypted
// embeddings), encryption, evaluation on a backend, decryption, logits out by the model's own names.
// On the simulator an optional monitor re-evaluates the program without CKKS error and warns, naming
// the op, when an approximated nonlinearity's input leaves its calibrated interval by more than the
// margin (on SEAL nobody can see those values, so there is no monitor). Loading validates the plan's
// `model` section by its schema and against the program (runtime/plan/model-schema.ts).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { FhecError } from '../ir/errors.js';
import { parseFhe } from '../ir/fhe/parse.js';
import type { FheProgram, SlotLayout } from '../ir/fhe/types.js';
import { Tensor } from '../ir/tensor.js';
import type { CkksBackend } from './backend.js';
import { runProgram, type ExecutionTrace, type RunResult } from './ckks/execute.js';
import type { RefreshAudit } from './refresh/audit.js';
import type { MaskPolicy } from './refresh/mask.js';
import { evaluatePlain } from '../ir/fhe/plain-eval.js';
import { programAtPast } from '../ir/fhe/past-instance.js';
import { checkPlanVersion, planFromDocument, readPlanJson, type Plan } from './plan/plan.js';
import { checkModelSection, checkMonitorProgram, MODEL_PLAN_KIND, modelSectionSchema, type ModelCacheInput, type ModelOutputMeta, type ModelPlanMeta } from './plan/model-schema.js';
import { parseWith } from './plan/validate.js';
import { readCheckedFile } from './plan/files.js';

// The `model` section's types come from its schema (runtime/plan/model-schema.ts).
export { MODEL_PLAN_KIND };
export type { ModelOutputMeta, ModelPlanMeta, ModelProbeMeta } from './plan/model-schema.js';

export interface ModelPlan {
  file: string;
  plan: Plan;
  meta: ModelPlanMeta;
  /** [vocab, dim] row-major. */
  table: Float32Array;
}

/** Loads a canonical model plan: the plan, its validated `model` section, and the embedding table. */
export function loadModelPlan(file: string): ModelPlan {
  const doc = readPlanJson(file);
  checkPlanVersion(doc, file);
  const section = doc && typeof doc === 'object' ? (doc as { model?: unknown }).model : undefined;
  if (!section || typeof section !== 'object' || (section as { kind?: unknown }).kind !== MODEL_PLAN_KIND) {
    throw new FhecError('plan was not compiled from a canonical model (no model section)', { file });
  }
  // The section's own schema first (cheap), then the plan, then the section against the program.
  const meta = parseWith(modelSectionSchema, section, file, 'plan', ['model']);
  const plan = planFromDocument(doc, file);
  checkModelSection(meta, plan.program, file);
  const tablePath = path.join(path.dirname(file), meta.embedding.file);
  // vocab x dim float32 values, with the digest the plan recorded.
  const expected = { bytes: meta.embedding.vocab * meta.embedding.dim * 4, sha256: meta.embedding.sha256 };
  const bytes = readCheckedFile(tablePath, `embedding table ${meta.embedding.file}`, expected, { owner: file, field: 'model.embedding' });
  const table = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  return { file, plan, meta, table };
}

export interface RangeWarning {
  op: string;
  role: string;
  /** Observed extreme of the input, and the allowed interval (calibrated range widened by the margin). */
  value: number;
  allowed: [number, number];
  message: string;
}

export interface SessionResult {
  outputs: Record<string, Tensor>;
  warnings: RangeWarning[];
  run: RunResult;
}

export interface SessionOptions {
  /** Check approximated inputs against their calibrated intervals (sim only; default on for sim). */
  monitor?: boolean;
  /** Called with each warning (default: console.warn). */
  onWarning?: (w: RangeWarning) => void;
  /** Per-op timings of the run (fhec run --trace). */
  trace?: ExecutionTrace;
  /** Records every refreshed ciphertext (--audit-refresh). */
  audit?: RefreshAudit;
  /** The refresh mask policy (--min-hiding-bits lowers minHidingBits; default 40, refresh/mask.ts). */
  mask?: Partial<MaskPolicy>;
  /** Evaluation worker threads on seal (runtime/parallel/; default 1). */
  workers?: number;
  /** Refresh masks made on a helper thread (seal, one evaluator thread; runtime/seal/mask-supply.ts). */
  maskThread?: boolean;
  /** The key holder returns the plan's rotations of refresh results (seal, one evaluator thread). */
  keyHolderRotations?: boolean;
}

/** Rows of the embedding table for the ids (negative ids count from the end, as Gather). */
export function embedTokens(table: Float32Array, vocab: number, dim: number, ids: ArrayLike<number>): Float64Array {
  const out = new Float64Array(ids.length * dim);
  for (let t = 0; t < ids.length; t++) {
    let id = ids[t]!;
    if (id < 0) id += vocab;
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new FhecError(`token id ${ids[t]} is outside the vocabulary (${vocab})`);
    for (let j = 0; j < dim; j++) out[t * dim + j] = table[id * dim + j]!;
  }
  return out;
}

/**
 * The embedding inputs of a plan: the rows [tokens, dim] of each token group by its FHE input (one
 * input when the tokens fit one ciphertext).
 */
export function embeddingInputs(e: { fhe: string; layout: SlotLayout; groups?: { fhe: string; tokenStart: number; layout: SlotLayout }[] }, rows: Float64Array): Record<string, Float64Array> {
  if (!e.groups) return { [e.fhe]: rows };
  const dim = e.layout.length;
  return Object.fromEntries(e.groups.map((g) => [g.fhe, rows.subarray(g.tokenStart * dim, (g.tokenStart + g.layout.tokens) * dim)]));
}

/** Reassembles a model output tensor from its decrypted blocks (slot vectors by FHE output name). */
/**
 * Float64 inputs of a model plan's program for one run: the embedded token rows (embeddingInputs) and each
 * past key/value cache expanded to its layout (expandCache); `cache` gives a cache's values by its model
 * input name, `what` names the source in the error when one is missing.
 */
export function modelProgramInputs(
  embedding: Parameters<typeof embeddingInputs>[0],
  rows: Float64Array,
  cacheInputs: readonly ModelCacheInput[],
  cache: (name: string) => ArrayLike<number> | undefined,
  what: string,
  past?: number,
): Record<string, Float64Array> {
  const inputs = embeddingInputs(embedding, rows);
  for (const c of cacheInputs) {
    const data = cache(c.name);
    if (!data) throw new FhecError(`${what} has no '${c.name}'`);
    inputs[c.fhe] = expandCache(c, data, past);
  }
  return inputs;
}

function assembleOutput(o: ModelOutputMeta, slotsOf: (fhe: string) => ArrayLike<number>): Tensor {
  const T = o.tokens;
  if (o.kv) {
    const { heads, headSize, group } = o.kv;
    const hs = o.kv.headStride ?? headSize;
    const out = new Float64Array(heads * T * headSize);
    for (const blk of o.blocks) {
      const v = slotsOf(blk.fhe);
      const t0 = blk.tokenStart ?? 0;
      for (let h = 0; h < heads; h++) {
        for (let t = 0; t < blk.layout.tokens; t++) for (let c = 0; c < headSize; c++) out[(h * T + t0 + t) * headSize + c] = v[t * blk.layout.stride + h * group * hs + c]!;
      }
    }
    return Tensor.from('float32', o.dims, out);
  }
  const out = new Float64Array(T * o.width);
  for (const blk of o.blocks) {
    const v = slotsOf(blk.fhe);
    const t0 = blk.tokenStart ?? 0;
    for (let t = 0; t < blk.layout.tokens; t++) for (let j = 0; j < blk.layout.length; j++) out[(t0 + t) * o.width + blk.colStart + j] = v[t * blk.layout.stride + j]!;
  }
  return Tensor.from('float32', o.dims, out);
}

/** Parses the monitor program and resolves its constants from the loaded (managed) program. */
export function monitorProgram(mp: ModelPlan): FheProgram {
  const parsed = parseFhe(mp.meta.monitorProgram, mp.file);
  // Inputs and outputs laid out as the plan's program has them (a decode bucket's plan at a shorter past
  // holds fewer cache tokens: runtime/generate/past-plan.ts).
  const io = new Map(mp.plan.program.ops.filter((o) => (o.kind === 'input' || o.kind === 'output') && o.tensor !== undefined && o.layout).map((o) => [o.tensor!, o.layout!]));
  const p = programAtPast(parsed, { constants: new Map(), layouts: io });
  // Checked here, not at load: only the sim monitor parses it (SEAL runs never do).
  checkMonitorProgram(mp.meta, p, mp.plan.program.slots, mp.file);
  for (const c of p.constants.values()) {
    // Weights (and streamed diagonals) are the plan program's constants of the same name.
    if (c.data.kind !== 'weights' && c.data.kind !== 'diagonal') continue;
    const src = mp.plan.program.constants.get(c.name);
    const same =
      c.data.kind === 'weights'
        ? src?.data.kind === 'dense'
        : src?.data.kind === 'diagonal' && src.data.matrix.id === c.data.matrix.id && JSON.stringify(src.data.geometry) === JSON.stringify(c.data.geometry);
    if (!src || !same) throw new FhecError(`monitor constant @${c.name} not found in the plan`, { file: mp.file });
    c.data = src.data;
  }
  return p;
}

/** Inputs of approximations outside their calibrated interval widened by the margin. */
export function checkRanges(mp: ModelPlan, program: FheProgram, inputs: Float64Array | Record<string, Float64Array>): RangeWarning[] {
  const ev = evaluatePlain(program, inputs instanceof Float64Array ? embeddingInputs(mp.meta.embedding, inputs) : inputs);
  const warnings: RangeWarning[] = [];
  for (const p of mp.meta.probes) {
    const v = ev.values.get(p.input);
    if (!v) continue;
    const [lo0, hi0] = p.observed;
    const allowed: [number, number] = [lo0 - p.margin * Math.abs(lo0), hi0 + p.margin * Math.abs(hi0)];
    let mn = Infinity;
    let mx = -Infinity;
    // A folded input map: the value holds alpha x + beta.
    const [alpha, beta] = p.inputMap ?? [1, 0];
    for (let i = 0; i < p.slots.length; i += 2) {
      for (let j = 0; j < p.slots[i + 1]!; j++) {
        const x = (v[p.slots[i]! + j]! - beta) / alpha;
        if (x < mn) mn = x;
        if (x > mx) mx = x;
      }
    }
    const bad = mn < allowed[0] ? mn : mx > allowed[1] ? mx : undefined;
    if (bad !== undefined) {
      warnings.push({
        op: p.op,
        role: p.role,
        value: bad,
        allowed,
        message: `${p.op}: input of ${p.role} reached ${bad.toPrecision(6)}, outside the calibrated interval [${allowed[0].toPrecision(6)}, ${allowed[1].toPrecision(6)}] (range plus margin ${p.margin}); the approximation is not accurate there`,
      });
    }
  }
  return warnings;
}

export class ModelSession {
  private monitorCache?: FheProgram;

  constructor(
    readonly model: ModelPlan,
    readonly backend: CkksBackend,
    readonly options: SessionOptions = {},
  ) {}

  /** Runs the model on its inputs (by the model's names: input_ids, and attention_mask / position_ids if it has them). */
  async run(inputs: Record<string, Tensor | ArrayLike<number>>): Promise<SessionResult> {
    const { meta, plan } = this.model;
    const idsIn = inputs[meta.embedding.ids];
    if (!idsIn) throw new FhecError(`missing input '${meta.embedding.ids}'`, { field: meta.embedding.ids });
    const ids = idsIn instanceof Tensor ? idsIn.data : idsIn;
    if (ids.length !== meta.tokens) throw new FhecError(`the plan was compiled for ${meta.tokens} tokens, got ${ids.length}`, { field: meta.embedding.ids });
    for (const inp of meta.inputs) {
      if (inp.name === meta.embedding.ids) continue;
      const given = inputs[inp.name];
      if (!given) continue;
      const data = given instanceof Tensor ? given.data : given;
      if (/attention_mask/i.test(inp.name) && Array.from(data).some((x) => x !== 1)) {
        throw new FhecError('the plan assumes no padding: attention_mask must be all ones', { field: inp.name });
      }
      const past = 'decode' in meta.mode ? meta.mode.decode : 0;
      if (/position_ids/i.test(inp.name) && Array.from(data).some((x, i) => x !== past + i)) {
        throw new FhecError(`the plan has positions ${past}..${past + meta.tokens - 1} compiled in`, { field: inp.name });
      }
    }
    let emb: Float64Array;
    try {
      emb = embedTokens(this.model.table, meta.embedding.vocab, meta.embedding.dim, ids);
    } catch (e) {
      throw e instanceof FhecError ? new FhecError(e.message, { ...e.where, field: meta.embedding.ids }) : e;
    }
    const tensors: Record<string, Float64Array> = { ...embeddingInputs(meta.embedding, emb), ...this.cacheTensors(inputs) };
    const run = await runProgram(plan.program, plan.params, this.backend, tensors, { trace: this.options.trace, refreshBounds: plan.refreshBounds, audit: this.options.audit, mask: this.options.mask, workers: this.options.workers, maskThread: this.options.maskThread, keyHolderRotations: this.options.keyHolderRotations });
    const outputs: Record<string, Tensor> = {};
    const slotVectors = new Map<string, Float64Array>();
    for (const [name, d] of run.outputs) slotVectors.set(name, d.values);
    for (const o of meta.outputs) {
      outputs[o.name] = assembleOutput(o, (fhe) => {
        const blk = o.blocks.find((x) => x.fhe === fhe)!;
        const v = slotVectors.get(fhe);
        if (!v) throw new FhecError(`output ${fhe} missing`);
        // decryptOutputs unpacked with the block layout: re-spread to slots for assembleOutput.
        const full = new Float64Array(blk.layout.stride * blk.layout.tokens);
        for (let t = 0; t < blk.layout.tokens; t++) for (let j = 0; j < blk.layout.length; j++) full[t * blk.layout.stride + j] = v[t * blk.layout.length + j]!;
        return full;
      });
    }
    const warnings: RangeWarning[] = [];
    const monitor = this.options.monitor ?? this.backend.simulated;
    if (monitor && this.backend.simulated) {
      this.monitorCache ??= monitorProgram(this.model);
      for (const w of checkRanges(this.model, this.monitorCache, tensors)) {
        warnings.push(w);
        (this.options.onWarning ?? ((x: RangeWarning) => console.warn(`warning: ${x.message}`)))(w);
      }
    }
    return { outputs, warnings, run };
  }

  /** Past K/V tensors [1, heads, P, H] as row-major [P, heads*group*H] (each KV head repeated per query head). */
  private cacheTensors(inputs: Record<string, Tensor | ArrayLike<number>>): Record<string, Float64Array> {
    const out: Record<string, Float64Array> = {};
    for (const c of this.model.meta.cacheInputs ?? []) {
      const t = inputs[c.name];
      if (!t) throw new FhecError(`missing input '${c.name}' (the encrypted KV cache)`, { field: c.name });
      const data = t instanceof Tensor ? t.data : t;
      out[c.fhe] = expandCache(c, data, pastTokens(this.model.meta));
    }
    return out;
  }
}

/** The past length of a decode plan (0 for prefill). */
function pastTokens(meta: ModelPlanMeta): number {
  return 'decode' in meta.mode ? meta.mode.decode : 0;
}

/**
 * A past K/V tensor [1, heads, P, H] as row-major [P, heads*group*S], each KV head repeated `group`
 * times and padded to S = headStride channels (zeros).
 */
export function expandCache(c: ModelCacheInput, data: ArrayLike<number>, past = c.layout.tokens): Float64Array {
  const P = past;
  const { heads, headSize: H, group } = c;
  if (data.length !== heads * P * H) throw new FhecError(`'${c.name}' must have ${heads * P * H} values ([1, ${heads}, ${P}, ${H}]), got ${data.length}`, { field: c.name });
  const S = c.headStride ?? H;
  const width = heads * group * S;
  const rows = new Float64Array(P * width);
  for (let t = 0; t < P; t++) for (let h = 0; h < heads * group; h++) for (let x = 0; x < H; x++) rows[t * width + h * S + x] = data[(Math.floor(h / group) * P + t) * H + x]!;
  // A cache split over ciphertexts: this one's tokens.
  const t0 = c.tokenStart ?? 0;
  return t0 === 0 && c.layout.tokens === P ? rows : rows.slice(t0 * width, (t0 + c.layout.tokens) * width);
}
