// Teacher-forced accuracy of a compiled model plan against the plaintext model: windows of a text
// file are fed as prompts; at every position the greedy next token from the decrypted logits is
// compared with the one from the reference interpreter's float64 logits (which match onnxruntime's
// fp32 logits to ~2e-5; test/model-accuracy.test.ts checks that on one window), and the logit errors
// are accumulated.

import * as fs from 'node:fs';
import { FhecError } from '../ir/errors.js';
import { Tensor } from '../ir/tensor.js';
import type { CkksBackend } from '../runtime/backend.js';
import type { ModelPlan, RangeWarning } from '../runtime/model-session.js';
import { ModelSession } from '../runtime/model-session.js';
import { runGraph } from '../runtime/reference/interpreter.js';
import { generatorBindings } from '../passes/canonical/specialize.js';
import { inputsForTokens, tokenizeText, windowStarts } from './calibration-data.js';
import { loadModel } from './driver.js';
import { importOnnx } from './onnx/import.js';
import type { RefreshAudit } from '../runtime/refresh/audit.js';
import type { MaskPolicy } from '../runtime/refresh/mask.js';

export interface AccuracyFigures {
  file: string;
  windows: number;
  positions: number;
  /** Positions where argmax(FHE logits) == argmax(reference logits). */
  agree: number;
  agreement: number;
  maxAbsError: number;
  meanAbsError: number;
  warnings: RangeWarning[];
  ms: number;
  /** Decode plans: time in the plan's runs alone (encrypt, evaluate, decrypt), without the plaintext reference. */
  runMs?: number;
}

export interface AccuracyOptions {
  /** Windows to run per file (default 4); windows are consecutive, non-overlapping, from the start. */
  windows?: number;
  /** The model's Hugging Face tokenizer folder (default: UTF-8 bytes). */
  tokenizer?: string;
  /** Skip this many windows first (e.g. to leave the calibration windows out). */
  skip?: number;
  onWindow?: (file: string, i: number, agree: number, positions: number) => void;
  /** Records every refreshed ciphertext (--audit-refresh); each window is one run. */
  audit?: RefreshAudit;
  /** The refresh mask policy (--min-hiding-bits). */
  mask?: Partial<MaskPolicy>;
  /** Evaluation worker threads on seal (default 1). */
  workers?: number;
}

function argmax(v: ArrayLike<number>, off: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (v[off + i]! > v[off + best]!) best = i;
  return best;
}

/** Reference logits [S, V] for a window, from the imported model specialized to S. */
export function referenceLogits(modelFile: string, tokens: number[]): Tensor {
  const imported = importOnnx(modelFile).graph;
  const bindings = generatorBindings(imported, { kind: 'prefill', sequence: tokens.length });
  const { graph } = loadModel(modelFile, { bindings, verifyEach: false });
  const out = runGraph(graph, inputsForTokens(graph, tokens, modelFile));
  const logits = out['logits'] ?? Object.values(out)[0];
  if (!logits) throw new FhecError('the model has no logits output', { file: modelFile });
  return logits;
}

export async function measureAccuracy(
  modelFile: string,
  plan: ModelPlan,
  backend: CkksBackend,
  textFile: string,
  opts: AccuracyOptions = {},
): Promise<AccuracyFigures> {
  const t0 = performance.now();
  const S = plan.meta.tokens;
  const imported = importOnnx(modelFile).graph;
  const text = tokenizeText(imported, fs.readFileSync(textFile), textFile, opts.tokenizer);
  const starts = windowStarts(text.length, { window: S }).slice(opts.skip ?? 0, (opts.skip ?? 0) + (opts.windows ?? 4));
  const { graph } = loadModel(modelFile, { bindings: generatorBindings(imported, { kind: 'prefill', sequence: S }), verifyEach: false });
  const session = new ModelSession(plan, backend, { onWarning: () => {}, ...(opts.audit ? { audit: opts.audit } : {}), ...(opts.mask ? { mask: opts.mask } : {}), ...(opts.workers ? { workers: opts.workers } : {}) });
  const fig: AccuracyFigures = { file: textFile, windows: 0, positions: 0, agree: 0, agreement: 0, maxAbsError: 0, meanAbsError: 0, warnings: [], ms: 0 };
  let sumErr = 0;
  let count = 0;
  for (const [i, w] of starts.entries()) {
    if (w.length !== S) continue;
    const tokens = text.slice(w.start, w.start + S);
    const inputs = inputsForTokens(graph, tokens, textFile);
    const ref = runGraph(graph, inputs)['logits']!;
    const res = await session.run(inputs);
    const got = res.outputs['logits']!;
    fig.warnings.push(...res.warnings);
    const V = ref.dims[ref.dims.length - 1]!;
    let agreeHere = 0;
    for (let t = 0; t < S; t++) {
      if (argmax(got.data, t * V, V) === argmax(ref.data, t * V, V)) agreeHere++;
      for (let j = 0; j < V; j++) {
        const e = Math.abs(got.data[t * V + j]! - ref.data[t * V + j]!);
        sumErr += e;
        count++;
        if (e > fig.maxAbsError) fig.maxAbsError = e;
      }
    }
    fig.agree += agreeHere;
    fig.positions += S;
    fig.windows++;
    opts.onWindow?.(textFile, i, agreeHere, S);
  }
  fig.agreement = fig.positions ? fig.agree / fig.positions : 0;
  fig.meanAbsError = count ? sumErr / count : 0;
  fig.ms = performance.now() - t0;
  return fig;
}

export function formatAccuracy(f: AccuracyFigures): string {
  return `${f.file}: ${f.windows} windows, ${f.positions} positions: greedy agreement ${(100 * f.agreement).toFixed(2)}% (${f.agree}/${f.positions}), ` +
    `max |logit error| ${f.maxAbsError.toExponential(3)}, mean ${f.meanAbsError.toExponential(3)}, range warnings ${f.warnings.length}, ${(f.ms / 1000).toFixed(1)} s`;
}

/**
 * Decode plans: for windows of P+1 tokens, the cache of the first P (computed by the plaintext model)
 * is encrypted, the plan computes token P's logits and the updated cache, and the greedy next token is
 * compared with the plaintext decode step.
 */
export async function measureDecodeAccuracy(
  modelFile: string,
  plan: ModelPlan,
  backend: CkksBackend,
  textFile: string,
  opts: AccuracyOptions = {},
): Promise<AccuracyFigures> {
  const t0 = performance.now();
  const mode = plan.meta.mode;
  if (!('decode' in mode)) throw new FhecError('not a decode plan', { file: plan.file });
  const P = mode.decode;
  const imported = importOnnx(modelFile).graph;
  const text = tokenizeText(imported, fs.readFileSync(textFile), textFile, opts.tokenizer);
  const pre = loadModel(modelFile, { bindings: generatorBindings(imported, { kind: 'prefill', sequence: P }), verifyEach: false }).graph;
  const dec = loadModel(modelFile, { bindings: generatorBindings(imported, { kind: 'decode', past: P }), verifyEach: false }).graph;
  const session = new ModelSession(plan, backend, { onWarning: () => {}, ...(opts.audit ? { audit: opts.audit } : {}), ...(opts.mask ? { mask: opts.mask } : {}), ...(opts.workers ? { workers: opts.workers } : {}) });
  const fig: AccuracyFigures = { file: textFile, windows: 0, positions: 0, agree: 0, agreement: 0, maxAbsError: 0, meanAbsError: 0, warnings: [], ms: 0 };
  let sumErr = 0;
  let count = 0;
  const starts = windowStarts(text.length, { window: P + 1 }).slice(opts.skip ?? 0, (opts.skip ?? 0) + (opts.windows ?? 4));
  for (const [i, w] of starts.entries()) {
    if (w.length !== P + 1) continue;
    const tokens = text.slice(w.start, w.start + P + 1);
    const cache = runGraph(pre, inputsForTokens(pre, tokens.slice(0, P), textFile));
    const inputs: Record<string, Tensor> = {};
    for (const v of dec.inputs) {
      if (v.name === 'input_ids') inputs[v.name] = Tensor.from(v.dtype, [1, 1], [tokens[P]!]);
      else if (/attention_mask/.test(v.name)) inputs[v.name] = Tensor.from(v.dtype, [1, P + 1], new Array<number>(P + 1).fill(1));
      else if (/position_ids/.test(v.name)) inputs[v.name] = Tensor.from(v.dtype, [1, 1], [P]);
      else inputs[v.name] = cache[v.name.replace('past_key_values', 'present')]!;
    }
    const ref = runGraph(dec, inputs)['logits']!;
    const tr = performance.now();
    const res = await session.run(inputs);
    fig.runMs = (fig.runMs ?? 0) + performance.now() - tr;
    const got = res.outputs['logits']!;
    fig.warnings.push(...res.warnings);
    const V = ref.data.length;
    const agree = argmax(got.data, 0, V) === argmax(ref.data, 0, V) ? 1 : 0;
    for (let j = 0; j < V; j++) {
      const e = Math.abs(got.data[j]! - ref.data[j]!);
      sumErr += e;
      count++;
      if (e > fig.maxAbsError) fig.maxAbsError = e;
    }
    fig.agree += agree;
    fig.positions++;
    fig.windows++;
    opts.onWindow?.(textFile, i, agree, 1);
  }
  fig.agreement = fig.positions ? fig.agree / fig.positions : 0;
  fig.meanAbsError = count ? sumErr / count : 0;
  fig.ms = performance.now() - t0;
  return fig;
}
