// Runs every ONNX backend node test in /work/shared/onnx-node-tests through shape inference and the
// reference interpreter, checks every inferred shape against the computed value, and compares with
// the expected outputs using ONNX's own tolerance (|a - e| <= 1e-7 + 1e-3 |e|,
// NaN matches NaN, equal infinities match; shape and dtype must be equal).

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
    graph.outputs.forEach((v, k) => {
      const file = path.join(data, `output_${k}.pb`);
      if (!fs.existsSync(file)) return;
      const m = mismatch(got[v.name]!, readTensorProtoFile(file).tensor);
      if (m) problems.push(`output ${k} '${v.name}': ${m}`);
    });
    return problems.length ? problems.join('; ') : null;
  } catch (e) {
    const err = e as Error & { format?: () => string };
    return `threw: ${err.format ? err.format() : err.message}`;
  }
}

const failures = new Map<string, string>();
let passed = 0;

describe('ONNX backend node tests through the reference interpreter', () => {
  it('finds the test folders', () => {
    expect(folders.length).toBeGreaterThan(500);
  });

  for (const name of folders) {
    it(name, () => {
      const reason = runFolder(path.join(ROOT, name));
      if (reason === null) passed++;
      else failures.set(name, reason);
      // Individual failures are reported in the summary; the pass-rate check below is the gate.
    });
  }

  it('passes at least 95% of the tests', () => {
    expect(passed / folders.length).toBeGreaterThanOrEqual(0.95);
  });

  afterAll(() => {
    const lines = [`conformance: ${passed} passed, ${failures.size} failed`];
    for (const [name, reason] of failures) lines.push(`  FAIL ${name}: ${reason}`);
    console.log(lines.join('\n'));
  });
});
