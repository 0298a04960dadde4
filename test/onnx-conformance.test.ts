// Runs every ONNX backend node test in /work/shared/onnx-node-tests through shape inference and the
// reference interpreter, checks every inferred shape against the computed value, and compares with
// the expected outputs using ONNX's own tolerance (|a - e| <= 1e-7 + 1e-3 |e|,
// NaN matches NaN, equal infinities match; shape and dtype must be equal).
//
// One vitest test per folder: it fails when that node test fails, unless the folder is on the
// expected-failure list (EXPECTED_FAILURES in test/helpers/onnx-node-tests.ts), which gives each one
// its reason and the failure it must show. An expected failure that starts passing (or fails for
// another reason) fails too, so the list stays true.

import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXPECTED_FAILURES, NODE_TESTS_ROOT as ROOT, nodeTestFolders, runNodeTest } from './helpers/onnx-node-tests.js';

const folders = nodeTestFolders(ROOT);

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
        const reason = runNodeTest(path.join(ROOT, name));
        if (reason !== null) failures.set(name, reason);
        expect(reason, `${name} fails`).toBeNull();
      });
    } else {
      it(`${name} (expected failure: ${expected.reason})`, () => {
        const reason = runNodeTest(path.join(ROOT, name));
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
