// Plan files: what `fhec compile` writes and `fhec run` executes. A versioned JSON document (parameters,
// key set, the managed FHE program as text) plus a binary sidecar with the weight vectors as float64
// little-endian. Loading validates the schema (zod; errors name the file and the JSON path), the
// version, 128-bit security (unless the plan says `insecure`), that the primes are the ones SEAL will
// generate, the program against them, and the listed keys against the program. Other readers add
// their sections' schemas on top: model-schema.ts (`model`), interface-schema.ts (`interface`).
// A program with refresh ops must list, for each (in program order), the bound on |x| its mask is
// sized from and where the bound came from (`refreshPoints`); a plan without them is refused. Each point
// also records its `round` (ir/fhe/refresh-rounds.ts): the refreshes of one round can travel to the key
// holder together; the loader checks the rounds against the program.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { FhecError } from '../../ir/errors.js';
import { parseFhe } from '../../ir/fhe/parse.js';
import { printFhe } from '../../ir/fhe/print.js';
import type { FheConstant, FheProgram } from '../../ir/fhe/types.js';
import { verifyFhe } from '../../ir/fhe/verify.js';
import { refreshRounds, type RefreshRounds } from '../../ir/fhe/refresh-rounds.js';
import { fileName, int, malformed, nonNegInt, nonNegNumber, parseWith, posInt, posNumber, ringDegree, sha256 } from './validate.js';
import { readCheckedFile, sha256Hex, writeFileAtomic } from './files.js';
import { keyRequestFor } from '../ckks/execute.js';
import { isWeightRefs, readWeightRefs } from './weight-store.js';
import { bindMatrices, matricesForPlan, matricesSchema } from './matrices.js';
import { coeffModulusPrimes } from '../../ir/ckks/primes.js';
import { checkSecurity, keySetBytes, makeParameters, securityBanner, type CkksParameters } from '../../ir/ckks/params.js';

const PLAN_FORMAT = 'fhec-plan';
const PLAN_VERSION = 1;
/** Dense constants longer than this go to the weights sidecar. */
const INLINE_LIMIT = 16;

const planSchema = z.object({
  format: z.literal(PLAN_FORMAT),
  version: int(),
  params: z.strictObject({
    ringDegree: ringDegree(),
    bitSizes: z.array(posInt()).min(2),
    primes: z.array(z.string().regex(/^\d+$/, { error: 'expected a decimal prime' })),
    scale: posNumber(),
    insecure: z.boolean().optional(),
  }),
  keys: z.strictObject({
    galoisSteps: z.array(int()),
    relin: z.boolean(),
    bytes: nonNegNumber(),
  }),
  program: z.string(),
  /** One per refresh op, in program order: the refreshed value and the bound on |x| its mask is sized from. */
  refreshPoints: z
    .array(
      z.strictObject({
        value: z.string().min(1),
        bound: posNumber(),
        /**
         * 'proved': interval arithmetic from the input bounds and the approximations' output bounds, larger than
         * the calibrated one; 'both': a proof the calibrated bound covers; 'calibrated': max over the calibration
         * windows times the margin (no usable proof).
         */
        source: z.enum(['proved', 'both', 'calibrated', 'declared']),
        /** Largest |x| on the calibration windows (absent when nothing was calibrated). */
        calibratedMax: nonNegNumber().optional(),
        /** The proved bound, when interval arithmetic gives a finite one. */
        proved: posNumber().optional(),
        /** Dependency level among the refreshes (ir/fhe/refresh-rounds.ts); written by writePlan, checked on load. */
        round: nonNegInt().optional(),
      }),
    )
    .optional(),
  /** Matrices of `diagonal` constants, by reference to the model's external data (matrices.ts). */
  matrices: matricesSchema.optional(),
  weights: z
    .strictObject({
      file: fileName(),
      byteLength: nonNegInt(),
      /** Of the sidecar bytes (for a weight list: of the bytes its chunks assemble to). */
      sha256: sha256(),
    })
    .optional(),
});

export type PlanJson = z.infer<typeof planSchema>;

export interface Plan {
  params: CkksParameters;
  program: FheProgram;
  galoisSteps: number[];
  relin: boolean;
  /** Bound on |x| of each refreshed value, by its name (every refresh op of the program has one). */
  refreshBounds: Map<string, number>;
  /** Round of each refresh op in program order, and the number of rounds (ir/fhe/refresh-rounds.ts). */
  refreshRounds?: RefreshRounds;
  /** Printed loudly by whoever runs the plan when the parameters are insecure. */
  warning?: string;
  /** sha256 of the program text and of the weights (what code emitted from the plan was made for). */
  digests: { program: string; weights?: string };
}

export type RefreshPointRecord = NonNullable<PlanJson['refreshPoints']>[number];

/**
 * Writes `file` (JSON) and `file` with `.weights.bin` (the sidecar). Returns the sidecar path. A program
 * with refresh ops needs `refreshPoints` (one per refresh op, in program order).
 */
export function writePlan(file: string, program: FheProgram, params: CkksParameters, refreshPoints?: RefreshPointRecord[]): string {
  verifyFhe(program, { managed: true });
  const rounds = refreshRounds(program).rounds;
  refreshPoints = refreshPoints?.map((p, i) => ({ ...p, round: rounds[i]! }));
  checkRefreshPoints(program, refreshPoints, file);
  const chunks: Float64Array[] = [];
  let offset = 0;
  const constants = new Map<string, FheConstant>();
  for (const c of program.constants.values()) {
    if (c.data.kind === 'elided') throw new FhecError(`constant @${c.name} was elided when the program was printed: a plan needs its values`, { file });
    if (c.data.kind === 'dense' && c.data.values.length > INLINE_LIMIT) {
      constants.set(c.name, { name: c.name, data: { kind: 'weights', offset, length: c.data.values.length } });
      chunks.push(c.data.values);
      offset += c.data.values.length;
    } else constants.set(c.name, c);
  }
  const sidecar = file.replace(/\.json$/, '') + '.weights.bin';
  const bytes = new Uint8Array(offset * 8);
  const dv = new DataView(bytes.buffer);
  let at = 0;
  for (const ch of chunks) for (const v of ch) dv.setFloat64(8 * at++, v, true);
  const keys = keyRequestFor(program);
  const matrices = matricesForPlan(program, file);
  const json: PlanJson = {
    format: PLAN_FORMAT,
    version: PLAN_VERSION,
    params: {
      ringDegree: params.ringDegree,
      bitSizes: params.bitSizes,
      primes: params.primes.map(String),
      scale: params.scale,
      ...(params.insecure ? { insecure: true } : {}),
    },
    keys: { galoisSteps: keys.galoisSteps, relin: keys.relin, bytes: keySetBytes(params, keys.galoisSteps.length, keys.relin) },
    program: printFhe({ ...program, constants }),
    ...(refreshPoints && refreshPoints.length > 0 ? { refreshPoints } : {}),
    ...(matrices.length > 0 ? { matrices } : {}),
    weights: { file: path.basename(sidecar), byteLength: bytes.length, sha256: sha256Hex(bytes) },
  };
  // The sidecar first: a plan on disk never names a sidecar that is not there yet.
  writeFileAtomic(sidecar, bytes);
  writeFileAtomic(file, JSON.stringify(json, null, 1));
  return sidecar;
}

/** Refresh points must name the program's refreshed values, in program order, one each. */
function checkRefreshPoints(program: FheProgram, points: RefreshPointRecord[] | undefined, file: string): Map<string, number> {
  const refreshed = program.ops.filter((op) => op.kind === 'refresh').map((op) => op.args[0]!.name);
  const bounds = new Map<string, number>();
  if (refreshed.length === 0 && !points?.length) return bounds;
  if (!points) {
    throw new FhecError(`the program has ${refreshed.length} refreshes and the plan gives no bound on |x| for them (no refreshPoints): recompile the plan; a default bound would size the masks wrongly`, { file, field: 'refreshPoints' });
  }
  if (points.length !== refreshed.length) throw malformed(file, 'plan', ['refreshPoints'], `lists ${points.length} refresh points, the program has ${refreshed.length} refreshes`);
  const rounds = refreshRounds(program).rounds;
  points.forEach((p, i) => {
    if (p.value !== refreshed[i]) throw malformed(file, 'plan', ['refreshPoints', i, 'value'], `is '${p.value}', the program's refresh ${i + 1} refreshes %${refreshed[i]}`);
    if (p.round !== undefined && p.round !== rounds[i]) throw malformed(file, 'plan', ['refreshPoints', i, 'round'], `is ${p.round}, the program puts refresh ${i + 1} (of %${refreshed[i]}) in round ${rounds[i]}`);
    const prev = bounds.get(p.value);
    bounds.set(p.value, prev === undefined ? p.bound : Math.max(prev, p.bound));
  });
  return bounds;
}

/** The parsed JSON of a plan file (any kind: arithmetic, model, step plan). */
export function readPlanJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new FhecError(`cannot read plan (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { file });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FhecError(`plan is not valid JSON: ${(e as Error).message}`, { file });
  }
}

/** A plan of another version is refused before its fields are read (they may mean something else). */
export function checkPlanVersion(doc: unknown, file: string): void {
  if (doc && typeof doc === 'object' && 'version' in doc && (doc as { format?: unknown }).format === PLAN_FORMAT) {
    const v = (doc as { version: unknown }).version;
    if (v !== PLAN_VERSION) throw new FhecError(`unknown plan version ${JSON.stringify(v)} (this fhec reads version ${PLAN_VERSION})`, { file });
  }
}

/** What a plan records of its weights sidecar. */
export type WeightsEntry = NonNullable<PlanJson['weights']>;

/**
 * Validates a parsed plan document and builds the plan; `readWeights` supplies the sidecar bytes,
 * checked against the entry's size and digest.
 */
export function planFromJson(doc: unknown, file: string, readWeights: (entry: WeightsEntry) => Uint8Array): Plan {
  const where = { file };
  checkPlanVersion(doc, file);
  const json = parseWith(planSchema, doc, file, 'plan');
  let params: CkksParameters;
  try {
    params = makeParameters({ ...json.params, ...(json.params.insecure ? { insecure: true } : {}) });
  } catch (e) {
    throw e instanceof FhecError ? e.inFile(file) : e;
  }
  checkSecurity(params, file);
  const primes = coeffModulusPrimes(params.ringDegree, params.bitSizes).map(String);
  if (primes.length !== json.params.primes.length || primes.some((p, i) => p !== json.params.primes[i])) {
    throw new FhecError('plan primes do not match the bit sizes (the plan was edited or made for another SEAL)', { file, field: 'params.primes' });
  }
  const program = parseFhe(json.program, file);
  const needsWeights = [...program.constants.values()].some((c) => c.data.kind === 'weights');
  if (needsWeights) {
    if (!json.weights) throw new FhecError('plan refers to weights but names no weights file', where);
    const bytes = readWeights(json.weights);
    if (bytes.length !== json.weights.byteLength) {
      throw new FhecError(`weights file has ${bytes.length} bytes, the plan expects ${json.weights.byteLength}`, { file, field: 'weights' });
    }
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (const c of program.constants.values()) {
      if (c.data.kind !== 'weights') continue;
      const { offset, length } = c.data;
      if ((offset + length) * 8 > bytes.length) throw new FhecError(`constant @${c.name} lies outside the weights file`, where);
      const values = new Float64Array(length);
      for (let i = 0; i < length; i++) values[i] = dv.getFloat64(8 * (offset + i), true);
      c.data = { kind: 'dense', values };
    }
  }
  bindMatrices(program, json.matrices, file);
  const chain = program.chain;
  const data = params.primes.slice(0, -1);
  if (!chain || chain.ringDegree !== params.ringDegree || chain.primes.length !== data.length || chain.primes.some((q, i) => q !== data[i])) {
    throw new FhecError('plan program is typed for another modulus chain than its parameters', where);
  }
  try {
    verifyFhe(program, { managed: true });
  } catch (e) {
    throw e instanceof FhecError ? e.inFile(file) : e;
  }
  // The key set the plan advertises is the one its program needs (an edited list would only fail mid-run).
  const need = keyRequestFor(program);
  const listed = [...new Set(json.keys.galoisSteps)].sort((a, b) => a - b);
  if (listed.join(',') !== need.galoisSteps.join(',')) {
    throw malformed(file, 'plan', ['keys', 'galoisSteps'], `[${json.keys.galoisSteps.join(', ')}] are not the program's rotation steps [${need.galoisSteps.join(', ')}]`);
  }
  if (json.keys.relin !== need.relin) throw malformed(file, 'plan', ['keys', 'relin'], `is ${json.keys.relin} but the program ${need.relin ? 'relinearizes' : 'never relinearizes'}`);
  const refreshBounds = checkRefreshPoints(program, json.refreshPoints, file);
  const weights = weightsDigest(json);
  const digests = { program: sha256Hex(new TextEncoder().encode(json.program)), ...(weights ? { weights } : {}) };
  const plan: Plan = { params, program, galoisSteps: json.keys.galoisSteps, relin: json.keys.relin, refreshBounds, refreshRounds: refreshRounds(program), digests };
  const warning = securityBanner(params);
  if (warning) plan.warning = warning;
  return plan;
}

/**
 * The digest of what a plan computes with besides its program: the sidecar's sha256, and for a plan that
 * streams its weights, its matrices table too (which regions, read how).
 */
export function weightsDigest(doc: { weights?: { sha256?: unknown }; matrices?: unknown }): string | undefined {
  const sidecar = typeof doc.weights?.sha256 === 'string' ? doc.weights.sha256 : undefined;
  if (doc.matrices === undefined) return sidecar;
  return sha256Hex(new TextEncoder().encode(`${sidecar ?? ''}:${JSON.stringify(doc.matrices)}`));
}

/** Builds the plan of an already parsed document, reading the sidecar beside `file`. */
export function planFromDocument(doc: unknown, file: string): Plan {
  return planFromJson(doc, file, (entry) => {
    // Step plans of a generation keep their weights in a shared content-addressed store.
    if (!isWeightRefs(entry.file)) {
      return readCheckedFile(path.join(path.dirname(file), entry.file), `weights file ${entry.file}`, { bytes: entry.byteLength, sha256: entry.sha256 }, { owner: file, field: 'weights' });
    }
    // Each chunk is checked against its name; the whole against the plan (a list may be reordered).
    const bytes = readWeightRefs(file, entry.file);
    const digest = sha256Hex(bytes);
    if (digest !== entry.sha256) {
      throw new FhecError(`weight list ${entry.file} assembles to bytes with sha256 ${digest.slice(0, 16)}..., the plan recorded ${entry.sha256.slice(0, 16)}...`, { file, field: 'weights.sha256' });
    }
    return bytes;
  });
}

export function loadPlan(file: string): Plan {
  return planFromDocument(readPlanJson(file), file);
}
