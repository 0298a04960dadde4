// Content-addressed weight storage, for plans that share most of their weights: the step plans of a
// generation plan (the decode plans for P and P+1 differ in a few masks and coefficients, and each
// has ~90 MB of weights at N = 16384 for model A). Instead of its own sidecar of float64 values, such
// a plan names a weight list, NAME.weights.refs.json: the sidecar as a sequence of chunks (one per
// constant), each a file `<sha256>.bin` in a store directory beside the list, shared by every plan
// there and written once. Loading assembles exactly the bytes the sidecar would have had, so the plan
// document and its `weights` entry keep their meaning (file name and byte length).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { FhecError } from '../../ir/errors.js';
import { parseFhe } from '../../ir/fhe/parse.js';
import { readCheckedFile, sha256Hex, writeFileAtomic } from './files.js';

const WEIGHT_REFS_FORMAT = 'fhec-weight-refs';
const WEIGHT_REFS_VERSION = 1;
/** A plan's `weights.file` with this ending is a weight list, not raw float64 values. */
export const WEIGHT_REFS_SUFFIX = '.weights.refs.json';

const plainName = z.string().regex(/^(?!\.\.?$)[^/\\]+$/, { error: 'expected a plain directory name beside the weight list' });

const refsSchema = z.strictObject({
  format: z.literal(WEIGHT_REFS_FORMAT),
  version: z.number().int(),
  /** Store directory, beside the weight list. */
  store: plainName,
  /** Total bytes: the sum of the chunks'. */
  byteLength: z.number().int().nonnegative(),
  chunks: z.array(
    z.strictObject({
      sha256: z.string().regex(/^[0-9a-f]{64}$/, { error: 'expected a sha256 (64 lowercase hex digits)' }),
      bytes: z.number().int().positive().multipleOf(8, { error: 'expected a whole number of float64 values' }),
    }),
  ),
});

export type WeightRefs = z.infer<typeof refsSchema>;

export function isWeightRefs(name: string): boolean {
  return name.endsWith(WEIGHT_REFS_SUFFIX);
}

function malformedRefs(file: string, at: PropertyKey[], message: string): FhecError {
  const where = at.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`)).join('') || '(root)';
  return new FhecError(`malformed weight list: ${where}: ${message}`, { file });
}

/** Parses and checks a weight list document. */
function parseWeightRefs(doc: unknown, file: string): WeightRefs {
  if (doc && typeof doc === 'object' && (doc as { format?: unknown }).format === WEIGHT_REFS_FORMAT) {
    const v = (doc as { version?: unknown }).version;
    if (v !== WEIGHT_REFS_VERSION) throw new FhecError(`unknown weight list version ${JSON.stringify(v)} (this fhec reads version ${WEIGHT_REFS_VERSION})`, { file });
  }
  const r = refsSchema.safeParse(doc);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw malformedRefs(file, issue.path, issue.message);
  }
  const sum = r.data.chunks.reduce((s, c) => s + c.bytes, 0);
  if (sum !== r.data.byteLength) throw malformedRefs(file, ['byteLength'], `is ${r.data.byteLength}, the chunks add up to ${sum}`);
  return r.data;
}

/**
 * The sidecar bytes of a plan whose `weights.file` is the weight list `name` beside `planFile`: the
 * chunks read from the store in order. Each chunk must have the size the list says.
 */
export function readWeightRefs(planFile: string, name: string): Uint8Array {
  const file = path.join(path.dirname(planFile), name);
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FhecError(code ? `cannot read weight list ${name} (${code})` : `weight list ${name} is not valid JSON: ${(e as Error).message}`, { file: planFile });
  }
  const refs = parseWeightRefs(doc, file);
  const store = path.join(path.dirname(file), refs.store);
  const out = new Uint8Array(refs.byteLength);
  let at = 0;
  refs.chunks.forEach((c, i) => {
    const chunk = readCheckedFile(path.join(store, `${c.sha256}.bin`), `weight chunk ${refs.store}/${c.sha256}.bin`, { bytes: c.bytes, sha256: c.sha256 }, { owner: file, field: `chunks[${i}]` });
    out.set(chunk, at);
    at += c.bytes;
  });
  return out;
}

export interface StoredWeights {
  /** The weight list written beside the plan. */
  refs: string;
  chunks: number;
  /** Chunks the store did not have yet, and their bytes. */
  newChunks: number;
  newBytes: number;
  byteLength: number;
}

/**
 * Moves a written plan's raw sidecar into the store `storeDir` (a directory beside the plan): each
 * constant's range becomes a chunk, stored once by content; the plan's `weights.file` then names the
 * weight list, and the raw sidecar is removed. A plan without weights is left as it is.
 */
export function moveWeightsToStore(planFile: string, storeDir: string): StoredWeights | undefined {
  const doc = JSON.parse(fs.readFileSync(planFile, 'utf8')) as { program: string; weights?: { file: string; byteLength: number; sha256: string } };
  const w = doc.weights;
  if (!w || w.byteLength === 0 || isWeightRefs(w.file)) return undefined;
  const dir = path.dirname(planFile);
  if (path.dirname(path.resolve(storeDir)) !== path.resolve(dir)) throw new FhecError('the weight store must be a directory beside the plan', { file: planFile });
  const sidecar = path.join(dir, w.file);
  const bytes = new Uint8Array(fs.readFileSync(sidecar));
  if (bytes.length !== w.byteLength) throw new FhecError(`weights file has ${bytes.length} bytes, the plan expects ${w.byteLength}`, { file: planFile });
  // Cut at every constant's start and end: one chunk per constant (any gap is a chunk of its own).
  const cuts = new Set<number>([0, bytes.length]);
  for (const c of parseFhe(doc.program, planFile).constants.values()) {
    if (c.data.kind !== 'weights') continue;
    cuts.add(8 * c.data.offset);
    cuts.add(8 * (c.data.offset + c.data.length));
  }
  const bounds = [...cuts].filter((x) => x <= bytes.length).sort((a, b) => a - b);
  fs.mkdirSync(storeDir, { recursive: true });
  const refs: WeightRefs = { format: WEIGHT_REFS_FORMAT, version: WEIGHT_REFS_VERSION, store: path.basename(storeDir), byteLength: bytes.length, chunks: [] };
  let newChunks = 0;
  let newBytes = 0;
  for (let i = 0; i + 1 < bounds.length; i++) {
    const chunk = bytes.subarray(bounds[i]!, bounds[i + 1]!);
    const sha256 = sha256Hex(chunk);
    const file = path.join(storeDir, `${sha256}.bin`);
    // A stored chunk is reused only if its bytes still match its name (a damaged one is rewritten).
    if (!fs.existsSync(file) || fs.statSync(file).size !== chunk.length || sha256Hex(fs.readFileSync(file)) !== sha256) {
      writeFileAtomic(file, chunk);
      newChunks++;
      newBytes += chunk.length;
    }
    refs.chunks.push({ sha256, bytes: chunk.length });
  }
  const refsName = w.file.replace(/\.weights\.bin$/, '').replace(/\.bin$/, '') + WEIGHT_REFS_SUFFIX;
  writeFileAtomic(path.join(dir, refsName), JSON.stringify(refs));
  doc.weights = { file: refsName, byteLength: w.byteLength, sha256: w.sha256 };
  writeFileAtomic(planFile, JSON.stringify(doc, null, 1));
  fs.rmSync(sidecar, { force: true });
  return { refs: path.join(dir, refsName), chunks: refs.chunks.length, newChunks, newBytes, byteLength: bytes.length };
}
