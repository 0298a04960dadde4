// Section `conformance` (README "Conformance and accuracy", row "ONNX backend node tests"): every shared
// ONNX node test through the reference interpreter, as test/onnx-conformance.test.ts runs them: passed,
// failed and expected failures (test/helpers/onnx-node-tests.ts lists those with their reasons).
import * as path from 'node:path';
import { it } from 'vitest';
import { EXPECTED_FAILURES, NODE_TESTS_ROOT, nodeTestFolders, runNodeTest } from '../test/helpers/onnx-node-tests.js';
import { writeSection } from './record.js';

it('conformance: ONNX node tests through the reference interpreter', () => {
  const t0 = performance.now();
  const folders = nodeTestFolders();
  const failed: { name: string; reason: string; expected: string | null }[] = [];
  for (const name of folders) {
    const reason = runNodeTest(path.join(NODE_TESTS_ROOT, name));
    if (reason !== null) failed.push({ name, reason, expected: EXPECTED_FAILURES[name]?.reason ?? null });
  }
  const expectedFailures = failed.filter((f) => f.expected !== null).length;
  writeSection('conformance', t0, ['runNodeTest over every folder of ../shared/onnx-node-tests (test/onnx-conformance.test.ts)'], {
    folders: folders.length,
    passed: folders.length - failed.length,
    failed: failed.length,
    expectedFailures,
    unexpectedFailures: failed.length - expectedFailures,
  }, { root: NODE_TESTS_ROOT, failed });
});
