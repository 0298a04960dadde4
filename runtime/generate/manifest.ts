// The generation plan file: a small JSON manifest that names the model, the calibration and the
// compile options, and the directory of step plans (one canonical-model plan per step shape, written
// by compiler/model-plan.ts, compiled when first needed). The client reads only what it needs from it:
// the CKKS parameters it expects, and the embedding table it looks tokens up in. Reading checks the
// schema (errors name the file and the field), the version, and that the parameters are valid and the
// ones the step plans are compiled for.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { FhecError } from '../../ir/errors.js';
import { makeParameters } from '../../ir/ckks/params.js';
import { fileName, int, malformed, name, parseWith, posInt, posNumber, ringDegree, sha256 } from '../plan/validate.js';
import { readCheckedFile } from '../plan/files.js';

export const GENERATION_PLAN_KIND = 'fhec-generation-plan';
export const GENERATION_PLAN_VERSION = 1;

const WHAT = 'generation plan';

const manifestSchema = z.strictObject({
  kind: z.literal(GENERATION_PLAN_KIND),
  version: int(),
  /** The ONNX model (with a KV cache), relative to the manifest's directory or absolute. */
  model: name(),
  modelSha256: z.string().regex(/^[0-9a-f]{64}$/, { error: 'expected a sha256 (64 lowercase hex digits)' }),
  calibration: name(),
  compile: z.strictObject({
    ringDegree: ringDegree(),
    /** Chain levels chosen by the parameter search (absent: the longest chain ringDegree holds). */
    levels: posInt().optional(),
    maxWindows: posInt().optional(),
    placement: z.enum(['optimal', 'greedy']).optional(),
    /** Step plans reference the model's external data instead of storing weights (compile --stream-weights). */
    streamWeights: z.boolean().optional(),
  }),
  maxContext: posInt().min(2, { error: 'expected a context of at least 2 positions' }),
  /** UTF-8 bytes, or the model's Hugging Face tokenizer folder (relative to the manifest) and its tokenizer.json's sha256. */
  tokenizer: z.union([z.literal('bytes'), z.strictObject({ dir: name(), sha256: sha256() })]),
  vocab: posInt(),
  dim: posInt(),
  /** Embedding table [vocab, dim] float32 little-endian, beside the manifest. */
  embedding: fileName(),
  /** Of the embedding table's bytes. */
  embeddingSha256: sha256(),
  params: z.strictObject({ ringDegree: ringDegree(), bitSizes: z.array(posInt()).min(2), scale: posNumber() }),
  /** Directory of step plans, beside the manifest. */
  steps: fileName(),
  /** Prefill lengths compiled at compile time (others are compiled on demand). */
  prefill: z.array(posInt()).min(1),
  /**
   * Decode plans by buckets of past length, all compiled at compile time: the plan for a bucket decodes
   * after its `to` and serves every past from..to (runtime/generate/past-plan.ts). Absent (older plans):
   * one decode plan per past, compiled on first use.
   */
  decodeBuckets: z.array(z.strictObject({ from: posInt(), to: posInt() })).min(1).optional(),
});

export type GenerationManifest = z.infer<typeof manifestSchema>;

export function readGenerationManifest(file: string): GenerationManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FhecError(code ? `cannot read generation plan (${code})` : `generation plan is not valid JSON: ${(e as Error).message}`, { file });
  }
  if (!doc || typeof doc !== 'object' || (doc as { kind?: unknown }).kind !== GENERATION_PLAN_KIND) {
    throw new FhecError('not a generation plan (compile one with `fhec compile MODEL -o PLAN --calibration FILE --max-context C`)', { file });
  }
  const version = (doc as { version?: unknown }).version;
  if (version !== GENERATION_PLAN_VERSION) throw new FhecError(`unknown generation plan version ${JSON.stringify(version)} (this fhec reads version ${GENERATION_PLAN_VERSION})`, { file });
  const m = parseWith(manifestSchema, doc, file, WHAT);
  // Every step plan is compiled with compile.ringDegree into these parameters: they must agree.
  if (m.params.ringDegree !== m.compile.ringDegree) throw malformed(file, WHAT, ['params', 'ringDegree'], `is ${m.params.ringDegree}, but the step plans are compiled at ${m.compile.ringDegree}`);
  try {
    makeParameters(m.params);
  } catch (e) {
    if (e instanceof FhecError) throw malformed(file, WHAT, ['params'], e.message);
    throw e;
  }
  if (m.tokenizer === 'bytes' && m.vocab < 256) throw malformed(file, WHAT, ['vocab'], `is ${m.vocab}, but byte tokens need ids 0..255`);
  m.prefill.forEach((S, i) => {
    if (S > m.maxContext) throw malformed(file, WHAT, ['prefill', i], `${S} is past the context of ${m.maxContext}`);
    if (m.prefill.indexOf(S) !== i) throw malformed(file, WHAT, ['prefill', i], `${S} is listed twice`);
  });
  m.decodeBuckets?.forEach((b, i) => {
    if (b.from > b.to || b.to >= m.maxContext || (i > 0 && b.from !== m.decodeBuckets![i - 1]!.to + 1)) {
      throw malformed(file, WHAT, ['decodeBuckets', i], `[${b.from}, ${b.to}] is not the next run of pasts below the context of ${m.maxContext}`);
    }
  });
  return m;
}

/** What the client holds: the embedding table and the parameters it will check the evaluator's against. */
export interface ClientModel {
  vocab: number;
  /** The manifest's tokenizer: bytes (also when absent), or a Hugging Face folder (resolved path) with its tokenizer.json digest. */
  tokenizer?: 'bytes' | { dir: string; sha256: string };
  dim: number;
  /** [vocab, dim] row-major. */
  table: Float32Array;
  params: GenerationManifest['params'];
}

/** `tokenizerDir`: a Hugging Face tokenizer folder to use instead of the one the manifest records (same tokenizer.json). */
export function loadClientModel(file: string, tokenizerDir?: string): ClientModel {
  const m = readGenerationManifest(file);
  if (tokenizerDir !== undefined && m.tokenizer === 'bytes') {
    throw new FhecError('this generation plan was compiled for UTF-8 byte tokens: drop --tokenizer, or recompile with --tokenizer DIR', { file, field: '--tokenizer' });
  }
  const tablePath = path.join(path.dirname(file), m.embedding);
  // vocab x dim float32 values, with the digest the plan recorded.
  const bytes = readCheckedFile(tablePath, `embedding table ${m.embedding}`, { bytes: m.vocab * m.dim * 4, sha256: m.embeddingSha256 }, { owner: file, field: 'embedding' });
  const table = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  const tokenizer = m.tokenizer === 'bytes' ? 'bytes' : { dir: tokenizerDir ?? path.resolve(path.dirname(file), m.tokenizer.dir), sha256: m.tokenizer.sha256 };
  return { vocab: m.vocab, dim: m.dim, table, params: m.params, tokenizer };
}
