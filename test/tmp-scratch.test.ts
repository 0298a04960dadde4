// The suite runs with its own scratch folder (test/global-setup.ts), so temporary plans and weights do not
// pile up in the system temp folder: os.tmpdir() here, and in processes the tests start, is that folder.
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect, it } from 'vitest';

it('tests and the processes they start write scratch files under the run folder', () => {
  expect(path.basename(os.tmpdir())).toMatch(/^fhec-test-run-/);
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(require("node:os").tmpdir())'], { encoding: 'utf8' });
  expect(child.stdout).toBe(os.tmpdir());
});
