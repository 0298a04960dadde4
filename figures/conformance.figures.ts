// README row "ONNX backend node tests": passed / failed counts of the conformance suite, and which fail.
import * as path from 'node:path';
import { expect, it } from 'vitest';
import { EXPECTED_FAILURES, NODE_TESTS_ROOT, nodeTestFolders, runNodeTest } from '../test/helpers/onnx-node-tests.js';
import { writeFigures } from './record.js';

const TEST = 'ONNX node tests: 536 passed, 3 failed of 539';

it(TEST, () => {
  const t0 = performance.now();
  const folders = nodeTestFolders();
  const failed: { name: string; reason: string; expected: string | null }[] = [];
  for (const name of folders) {
    const reason = runNodeTest(path.join(NODE_TESTS_ROOT, name));
    if (reason !== null) failed.push({ name, reason, expected: EXPECTED_FAILURES[name]?.reason ?? null });
  }
  const passed = folders.length - failed.length;
  const rangeLoop = failed.every((f) => /^test_range_.*_expanded$/.test(f.name) && /Loop/.test(f.reason));
  const figures = [
    { what: 'passed / failed / folders', readme: '536 passed, 3 failed of 539', measured: { passed, failed: failed.length, folders: folders.length }, holds: passed === 536 && failed.length === 3 && folders.length === 539 },
    { what: 'the failures', readme: 'the 3 failures are test_range_*_expanded, whose function bodies use Loop', measured: failed.map((f) => f.name), holds: rangeLoop },
  ];
  writeFigures({ name: 'conformance', script: 'conformance', test: TEST, readmeRow: 'ONNX backend node tests (test/onnx-conformance.test.ts)', seconds: (performance.now() - t0) / 1000, figures, details: { root: NODE_TESTS_ROOT, failed } });
  for (const f of figures) expect(f.holds, f.what).toBe(true);
});
