// The generation plan file: a small JSON manifest that names the model, the calibration and the
// compile options, and the directory of step plans (one canonical-model plan per step shape, written
// by compiler/model-plan.ts, compiled when first needed). The client reads only what it needs from it:
// the CKKS parameters it expects, and the embedding table it looks tokens up in.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { FhecError } from '../../ir/errors.js';

export const GENERATION_PLAN_KIND = 'fhec-generation-plan';
export const GENERATION_PLAN_VERSION = 1;

const manifestSchema = z.object({
  kind: z.literal(GENERATION_PLAN_KIND),
  version: z.number().int(),
  /** The ONNX model (with a KV cache), relative to the manifest's directory or absolute. */
  model: z.string(),
  modelSha256: z.string().regex(/^[0-9a-f]{64}$/),
  calibration: z.string(),
  compile: z.object({
    ringDegree: z.number().int(),
    maxWindows: z.number().int().positive().optional(),
    placement: z.enum(['optimal', 'greedy']).optional(),
  }),
  maxContext: z.number().int().positive(),
  tokenizer: z.literal('bytes'),
  vocab: z.number().int().positive(),
  dim: z.number().int().positive(),
  /** Embedding table [vocab, dim] float32 little-endian, beside the manifest. */
  embedding: z.string(),
  params: z.object({ ringDegree: z.number().int(), bitSizes: z.array(z.number().int()).min(2), scale: z.number().positive() }),
  /** Directory of step plans, beside the manifest. */
  steps: z.string(),
  /** Prefill lengths compiled at compile time (others are compiled on demand). */
  prefill: z.array(z.number().int().positive()),
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
  if (doc && typeof doc === 'object' && (doc as { kind?: unknown }).kind !== GENERATION_PLAN_KIND) {
    throw new FhecError('not a generation plan (compile one with `fhec compile MODEL -o PLAN --calibration FILE --max-context C`)', { file });
  }
  const parsed = manifestSchema.safeParse(doc);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new FhecError(`malformed generation plan: ${issue.path.join('.') || '(root)'}: ${issue.message}`, { file, field: issue.path.join('.') });
  }
  if (parsed.data.version !== GENERATION_PLAN_VERSION) throw new FhecError(`unknown generation plan version ${parsed.data.version}`, { file });
  return parsed.data;
}

/** What the client holds: the embedding table and the parameters it will check the evaluator's against. */
export interface ClientModel {
  vocab: number;
  dim: number;
  /** [vocab, dim] row-major. */
  table: Float32Array;
  params: GenerationManifest['params'];
}

export function loadClientModel(file: string): ClientModel {
  const m = readGenerationManifest(file);
  const tablePath = path.join(path.dirname(file), m.embedding);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(tablePath);
  } catch (e) {
    throw new FhecError(`cannot read the embedding table ${m.embedding} (${(e as NodeJS.ErrnoException).code})`, { file });
  }
  if (bytes.length !== m.vocab * m.dim * 4) throw new FhecError(`embedding table ${m.embedding} has ${bytes.length} bytes, expected ${m.vocab * m.dim * 4}`, { file });
  const table = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  return { vocab: m.vocab, dim: m.dim, table, params: m.params };
}
