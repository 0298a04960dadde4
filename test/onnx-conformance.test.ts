// Runs every ONNX backend node test in /work/shared/onnx-node-tests through shape inference and the
// reference interpreter, checks every inferred shape against the computed value, and compares with
// the expected outputs using ONNX's own tolerance (|a - e| <= 1e-7 + 1e-3 |e|,
// NaN matches NaN, equal infinities match; shape and dtype must be equal).
//
// One vitest test per folder: it fails when that node test fails, unless the folder is on the
// expected-failure list below, which gives each one its reason and the failure it must show. An
// expected failure that starts passing (or fails for another reason) fails too, so the list stays true.

import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { importOnnx } from '../compiler/onnx/import.js';
import { readTensorProtoFile } from '../compiler/onnx/tensor-proto.js';
import type { Tensor } from '../ir/tensor.js';
import { inferGraph } from '../ir/ops/infer-graph.js';
import { runGraph } from '../runtime/reference/interpreter.js';

import { NODE_TESTS } from './helpers/shared.js';
// FHEC_NODE_TESTS points the suite at another copy of ONNX's node tests (e.g. a fuller upstream set).
const ROOT = process.env.FHEC_NODE_TESTS ?? NODE_TESTS;
const ATOL = 1e-7;
const RTOL = 1e-3;

/** Node tests known to fail: why, and the failure each must show (a different failure is a new bug). */
const EXPECTED_FAILURES: Record<string, { reason: string; failure: RegExp }> = {
  // ONNX's function body of Range builds the sequence with a Loop; the interpreter runs no control flow.
  test_range_float16_type_positive_delta_expanded: { reason: 'the expanded Range body uses Loop (control flow is not supported)', failure: /Loop is not supported/ },
  test_range_float_type_positive_delta_expanded: { reason: 'the expanded Range body uses Loop (control flow is not supported)', failure: /Loop is not supported/ },
  test_range_int32_type_negative_delta_expanded: { reason: 'the expanded Range body uses Loop (control flow is not supported)', failure: /Loop is not supported/ },
};

const folders = fs.existsSync(ROOT)
  ? fs.readdirSync(ROOT).filter((d) => d.startsWith('test_') && fs.statSync(path.join(ROOT, d)).isDirectory()).sort()
  : [];

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
function runFolder(dir: string): string | null {
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

const failures = new Map<string, string>();

describe('ONNX backend node tests through the reference interpreter', () => {
  it('finds the test folders, and every expected failure names one of them', () => {
    expect(folders.length).toBeGreaterThan(500);
    const missing = Object.keys(EXPECTED_FAILURES).filter((name) => !folders.includes(name));
    expect(missing, 'expected failures with no such test folder (remove them from the list)').toEqual([]);
  });

  for (const name of folders) {
    const expected = EXPECTED_FAILURES[name];
    if (!expected) {
      it(name, () => {
        const reason = runFolder(path.join(ROOT, name));
        if (reason !== null) failures.set(name, reason);
        expect(reason, `${name} fails`).toBeNull();
      });
    } else {
      it(`${name} (expected failure: ${expected.reason})`, () => {
        const reason = runFolder(path.join(ROOT, name));
        if (reason !== null) failures.set(name, reason);
        expect(reason, `${name} now passes: remove it from EXPECTED_FAILURES`).not.toBeNull();
        expect(reason, `${name} fails for another reason than the listed one`).toMatch(expected.failure);
      });
    }
  }

  afterAll(() => {
    const unexpected = [...failures.keys()].filter((n) => !EXPECTED_FAILURES[n]);
    const lines = [
      `conformance: ${folders.length - failures.size} of ${folders.length} passed, ${failures.size} failed ` +
        `(${failures.size - unexpected.length} expected, ${unexpected.length} unexpected)`,
    ];
    for (const [name, reason] of failures) lines.push(`  ${EXPECTED_FAILURES[name] ? 'expected' : 'FAIL'} ${name}: ${reason}`);
    console.log(lines.join('\n'));
  });
});
