// ONNX graph -> encrypted plan: lower the arithmetic graph to an FHE program, choose CKKS parameters for
// its depth at 128-bit security (insecure ones only when asked), place rescales and relinearizations,
// verify, plan the Galois keys within the key-memory budget, and write the plan (JSON + weights sidecar)
// with the tensor interface `fhec run` needs to encrypt inputs and decrypt outputs by name.

import * as fs from 'node:fs';
import { FhecError } from '../ir/errors.js';
import type { FheProgram } from '../ir/fhe/types.js';
import type { Graph } from '../ir/graph/types.js';
import { fheCost, type FheCost } from '../passes/fhe/analysis/cost.js';
import type { GraphLowering } from '../passes/fhe/lower/lower-graph.js';
import { graphSource } from '../passes/fhe/lower/lower-graph-pass.js';
import { graphFhePipeline } from '../passes/fhe/registry.js';
import { requireParameters, unitOf, withoutAttributes } from '../passes/fhe/pipeline/unit.js';
import type { PassRun } from '../passes/pass-manager.js';
import type { PlanInterface } from '../passes/fhe/lower/interface.js';
import { keyRequestFor } from '../runtime/ckks/execute.js';
import {
  describeParameters,
  keySwitchKeyBytes,
  securityBanner,
  type CkksParameters,
} from '../ir/ckks/params.js';
import { DEFAULT_KEY_BUDGET_BYTES, planRotationKeys, type RotationKeyPlan } from '../ir/ckks/rotation-keys.js';
import { writePlan } from '../runtime/plan/plan.js';
import { writeFileAtomic } from '../runtime/plan/files.js';
import { proveInputRanges, type DeclaredRanges, type InputRanges } from './input-ranges.js';
import { defaultCostTable } from '../ir/ckks/cost-table.js';
import { buildPlanAnalysis } from './report/plan-analysis.js';
import { loadModel, runFhePipeline } from './driver.js';

export interface FheCompileOptions {
  /** Symbolic dim bindings (--bind name=value). */
  bindings?: Record<string, number>;
  /** Allow parameters below 128-bit security (smaller and faster; never for real data). */
  insecure?: boolean;
  /** log2 of the CKKS scale; default 40. */
  scaleBits?: number;
  /** Bits for the integer part of values; default 20. */
  integerBits?: number;
  /** Force the ring degree N (slots = N/2); it still has to be secure unless `insecure`. */
  ringDegree?: number;
  /** Memory the Galois keys may take; default 3 GiB (SEAL's wasm heap stops at 4 GiB). */
  keyBudgetBytes?: number;
  /** The model file, for errors. */
  file?: string;
  /** `--input-range` values; without any, the widest power-of-two range the modulus holds (compiler/input-ranges.ts). */
  inputRanges?: DeclaredRanges;
  /** The FHE pipeline instead of graphFhePipeline (passes/fhe/registry.ts). */
  fhePipeline?: string;
  /** --print-after PASS (repeatable) or --print-after-all: graph and FHE passes alike. */
  printAfter?: ReadonlySet<string> | 'all';
  emit?: (header: string, text: string) => void;
}

export interface CompiledFhe {
  lowering: GraphLowering;
  /** The managed program (levels, scales, rescales, relinearizations placed). */
  program: FheProgram;
  params: CkksParameters;
  /** Counts of the managed program. */
  cost: FheCost;
  keys: RotationKeyPlan;
  relin: boolean;
  /** Galois keys plus the relinearization key, in bytes. */
  keyBytes: number;
  /** The key-memory budget the Galois keys were planned for. */
  keyBudgetBytes: number;
  interface: PlanInterface;
  /** The interval each encrypted input must lie in, proved not to overflow the modulus. */
  inputRanges: InputRanges;
  /** The ranges are the default rule's, not declared. */
  rangesDefaulted: boolean;
  /** The loud banner for insecure parameters. */
  warning?: string;
  /** Every pass run, graph then FHE (--timing). */
  passRuns: PassRun[];
}

/** SEAL runs in wasm, whose heap stops at 4 GiB. */
const WASM_HEAP_BYTES = 2 ** 32;

/**
 * Refuses tensors that cannot be held as CKKS data at all: N/2 slots of a ciphertext take two
 * polynomials of N 8-byte coefficients per prime, so each element costs at least 32 bytes.
 */
function checkTensorSizes(graph: Graph, file?: string): void {
  const values = [...graph.inputs, ...graph.nodes.flatMap((n) => n.outputs.map((v) => ({ v, node: n })))];
  for (const item of values) {
    const { v, node } = 'v' in item ? item : { v: item, node: undefined };
    if (!v.shape || !v.shape.every((d): d is number => typeof d === 'number')) continue;
    const n = v.shape.reduce((a, b) => a * b, 1);
    if (n * 32 > WASM_HEAP_BYTES) {
      throw new FhecError(
        `${node ? `value '${v.name}'` : `input '${v.name}'`} has ${n} elements ([${v.shape.join(', ')}]): as CKKS data that is at least ` +
          `${(n * 32 / 2 ** 30).toFixed(0)} GiB, more than the 4 GiB SEAL's wasm heap holds`,
        { ...(file ? { file } : {}), ...(node ? { node: `${node.name} (${node.op})` } : { field: `input '${v.name}'` }) },
      );
    }
  }
}

export function compileGraphToFhe(graph: Graph, opts: FheCompileOptions = {}): CompiledFhe {
  checkTensorSizes(graph, opts.file);
  // The slot count shapes the packing, the depth decides the ring: select-parameters lowers again if the ring grows.
  const slots = opts.ringDegree ? opts.ringDegree / 2 : opts.insecure ? 2048 : 4096;
  const unit = unitOf<GraphLowering>({ name: graph.name, slots, constants: new Map(), ops: [] }, { source: graphSource(graph, slots, opts.file) });
  const parameters = [
    ...(opts.scaleBits !== undefined ? [`scale-bits=${opts.scaleBits}`] : []),
    ...(opts.integerBits !== undefined ? [`integer-bits=${opts.integerBits}`] : []),
    ...(opts.ringDegree !== undefined ? [`ring-degree=${opts.ringDegree}`] : []),
    ...(opts.insecure ? ['insecure'] : []),
  ];
  const passRuns = runFhePipeline(unit, opts.fhePipeline ?? graphFhePipeline(parameters), { printAfter: opts.printAfter, emit: opts.emit });
  if (!unit.lowered || !unit.program.chain) throw new FhecError(`the FHE pipeline '${opts.fhePipeline}' must lower and manage scales`, { field: '--fhe-pipeline' });
  const lowering = unit.lowered;
  const params = requireParameters(unit.program, 'compile');
  const program = withoutAttributes(unit.program);
  const request = keyRequestFor(program);
  const keyBudgetBytes = opts.keyBudgetBytes ?? DEFAULT_KEY_BUDGET_BYTES;
  const keys = planRotationKeys(params, request.galoisSteps, keyBudgetBytes);
  const proved = proveInputRanges(program, params, lowering.interface, opts.inputRanges ?? {}, opts.file);
  const compiled: CompiledFhe = {
    lowering,
    program,
    params,
    cost: fheCost(program),
    keys,
    relin: request.relin,
    keyBytes: keys.galoisBytes + (request.relin ? keySwitchKeyBytes(params) : 0),
    keyBudgetBytes,
    interface: lowering.interface,
    inputRanges: proved.ranges,
    rangesDefaulted: proved.defaulted,
    passRuns,
  };
  const warning = securityBanner(params);
  if (warning) compiled.warning = warning;
  return compiled;
}

export function compileOnnxToFhe(file: string, opts: FheCompileOptions = {}): CompiledFhe {
  const loaded = loadModel(file, { bindings: opts.bindings, printAfter: opts.printAfter, emit: opts.emit });
  const compiled = compileGraphToFhe(loaded.graph, { ...opts, file });
  return { ...compiled, passRuns: [...loaded.passRuns, ...compiled.passRuns] };
}

/** Writes the plan (JSON with the tensor interface, plus the weights sidecar); returns the sidecar path and the stored program text. */
export function writeFhePlan(file: string, compiled: CompiledFhe): { weights: string; programText: string } {
  if (!file.endsWith('.json')) throw new FhecError('the plan file name must end in .json', { file });
  const weights = writePlan(file, compiled.program, compiled.params);
  const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  doc.interface = compiled.interface;
  doc.inputRanges = compiled.inputRanges;
  doc.analysis = buildPlanAnalysis({
    lowered: compiled.lowering.program,
    kernels: compiled.lowering.nodes.map((n) => ({ name: n.node, op: n.op, depth: n.depth, ops: n.ops })),
    placed: compiled.lowering.program,
    managed: compiled.program,
    params: compiled.params,
    placement: 'none',
    costs: { table: defaultCostTable(), name: 'default (ir/ckks/default-costs.json)' },
  });
  doc.rotationKeys = {
    budgetBytes: compiled.keyBudgetBytes,
    keySteps: compiled.keys.keySteps,
    composed: compiled.keys.composed,
    bytes: compiled.keyBytes,
  };
  writeFileAtomic(file, JSON.stringify(doc, null, 1));
  return { weights, programText: doc.program as string };
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** The compile summary: parameters, keys, op counts, depth, the interface and how each node was lowered. */
export function summarizeFhe(compiled: CompiledFhe): string[] {
  const { params, cost, keys } = compiled;
  const lines: string[] = [];
  lines.push(`parameters: ${describeParameters(params)}`);
  lines.push(`security: ${compiled.warning ? 'INSECURE (below 128-bit, explicitly allowed with --insecure)' : '128-bit (HE standard tc128)'}`);
  lines.push(
    `keys: ${keys.keySteps.length} Galois key(s)${keys.composed ? ' (power-of-two, rotations composed)' : ''}` +
      `${compiled.relin ? ' + relinearization key' : ''}: ${mib(compiled.keyBytes)}` +
      (keys.keySteps.length ? ` (steps ${keys.keySteps.join(', ')})` : ''),
  );
  lines.push(
    `ops: ${cost.rotations} rotations, ${cost.ctMultiplications} ct x ct multiplications, ${cost.plainMultiplications} plaintext multiplications, ` +
      `${cost.additions} additions, ${cost.rescales} rescales, ${cost.relinearizations} relinearizations; depth ${cost.depth}`,
  );
  const tensor = (p: PlanInterface['inputs'][number]) => `${p.name} ${p.dtype} [${p.dims.join(', ')}] in ${p.ciphertexts.length} ciphertext(s)`;
  lines.push(`inputs (encrypted): ${compiled.interface.inputs.map(tensor).join('; ')}`);
  lines.push(`outputs: ${compiled.interface.outputs.map(tensor).join('; ')}`);
  const ranges = Object.entries(compiled.inputRanges).map(([n, [lo, hi]]) => `${n} [${lo}, ${hi}]`);
  lines.push(
    `input ranges${compiled.rangesDefaulted ? ' (default: the widest [-2^k, 2^k] the modulus provably holds; set them with --input-range)' : ''}: ` +
      `${ranges.join('; ')}; the client refuses values outside them`,
  );
  for (const n of compiled.lowering.nodes) {
    const what = n.notes.length ? `: ${n.notes.join('; ')}` : '';
    lines.push(
      `  ${n.op} ${n.node}: ${n.rotations} rotations, ${n.ctMultiplications} ct x ct, ${n.plainMultiplications} plaintext mult., depth ${n.depth}${what}`,
    );
  }
  return lines;
}
