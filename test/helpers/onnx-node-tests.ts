// One ONNX backend node test folder (model.onnx, test_data_set_0/input_*.pb, output_*.pb) run through
// the importer, shape inference and the reference interpreter, checked against the expected outputs with
// ONNX's own tolerance; and the list of folders known to fail, each with its reason. Used by
// test/onnx-conformance.test.ts (one test per folder) and the conformance figure (figures/).

import fs from 'node:fs';
import path from 'node:path';
import { importOnnx } from '../../compiler/onnx/import.js';
import { readTensorProtoFile } from '../../compiler/onnx/tensor-proto.js';
import type { Tensor } from '../../ir/tensor.js';
import { inferGraph } from '../../ir/ops/infer-graph.js';
import { runGraph } from '../../runtime/reference/interpreter.js';
import { NODE_TESTS } from './shared.js';

// FHEC_NODE_TESTS points the suite at another copy of ONNX's node tests (e.g. a fuller upstream set).
export const NODE_TESTS_ROOT = process.env.FHEC_NODE_TESTS ?? NODE_TESTS;

const ATOL = 1e-7;
const RTOL = 1e-3;

/** Node tests known to fail: why, and the failure each must show (a different failure is a new bug). */
export const EXPECTED_FAILURES: Record<string, { reason: string; failure: RegExp }> = {
  // ONNX's function body of Range builds the sequence with a Loop; the interpreter runs no control flow.
  test_range_float16_type_positive_delta_expanded: { reason: 'the expanded Range body uses Loop (control flow is not supported)', failure: /Loop is not supported/ },
  test_range_float_type_positive_delta_expanded: { reason: 'the expanded Range body uses Loop (control flow is not supported)', failure: /Loop is not supported/ },
  test_range_int32_type_negative_delta_expanded: { reason: 'the expanded Range body uses Loop (control flow is not supported)', failure: /Loop is not supported/ },
};

/** The test folders under `root`, sorted (none when it does not exist). */
export function nodeTestFolders(root = NODE_TESTS_ROOT): string[] {
  return fs.existsSync(root)
    ? fs.readdirSync(root).filter((d) => d.startsWith('test_') && fs.statSync(path.join(root, d)).isDirectory()).sort()
    : [];
}

/** Why `actual` does not match `expected`, or null when it does. */
function mismatch(actual: Tensor, expected: Tensor): string | null {
  if (actual.dtype !== expected.dtype) return `dtype ${actual.dtype}, expected ${expected.dtype}`;
  const ad = actual.dims.join(',');
  const ed = expected.dims.join(',');
  if (ad !== ed) return `shape [${ad}], expected [${ed}]`;
  let bad = 0;
  let first = '';
  for (let i = 0; i < expected.size; i++) {
    const a = actual.data[i]!;
    const e = expected.data[i]!;
    const ok = Number.isNaN(e) ? Number.isNaN(a) : a === e || Math.abs(a - e) <= ATOL + RTOL * Math.abs(e);
    if (!ok) {
      if (bad === 0) first = `at ${i}: got ${a}, expected ${e}`;
      bad++;
    }
  }
  return bad ? `${bad} of ${expected.size} values differ (first ${first})` : null;
}

/** Runs one test folder; returns null on success or the reason of the failure. */
export function runNodeTest(dir: string): string | null {
  try {
    const graph = importOnnx(path.join(dir, 'model.onnx')).graph;
    const data = path.join(dir, 'test_data_set_0');
    const inputs: Record<string, Tensor> = {};
    graph.inputs.forEach((v, k) => {
      const file = path.join(data, `input_${k}.pb`);
      inputs[v.name] = readTensorProtoFile(file).tensor;
    });
    // Shape inference (the compiler's infer-shapes) must agree with every value the kernels compute.
    inferGraph(graph);
    const problems: string[] = [];
    const got = runGraph(graph, inputs, {
      onNode: (node, outs) => node.outputs.forEach((v, k) => {
        const dims = outs[k]!.dims;
        const wrong = v.shape && (v.shape.length !== dims.length || v.shape.some((d, i) => typeof d === 'number' && d !== dims[i]));
        if (wrong) problems.push(`'${v.name}' inferred [${v.shape!.map((d) => d ?? '?').join(', ')}], computed [${dims.join(', ')}]`);
      }),
    });
    let compared = 0;
    graph.outputs.forEach((v, k) => {
      const file = path.join(data, `output_${k}.pb`);
      if (!fs.existsSync(file)) return;
      compared++;
      const m = mismatch(got[v.name]!, readTensorProtoFile(file).tensor);
      if (m) problems.push(`output ${k} '${v.name}': ${m}`);
    });
    // A folder whose expected outputs are all missing would otherwise pass without a comparison.
    if (compared === 0) problems.push('no expected output file (test_data_set_0/output_*.pb) to compare with');
    return problems.length ? problems.join('; ') : null;
  } catch (e) {
    const err = e as Error & { format?: () => string };
    return `threw: ${err.format ? err.format() : err.message}`;
  }
}

