// The suite's scratch space: every test (and every process a test starts, which inherits TMPDIR) writes
// its temporary plans, weights and logs under one folder, removed when the run ends. Plans with their
// weight sidecars run to a gigabyte each; left in the system temp folder they filled a 250 GB disk over a
// few runs. FHEC_KEEP_TMP=1 keeps the folder (its path is printed) to look at a failure.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export default function setup(): () => void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-test-run-'));
  process.env['TMPDIR'] = dir;
  return () => {
    if (process.env['FHEC_KEEP_TMP']) console.log(`test scratch folder kept: ${dir}`);
    else fs.rmSync(dir, { recursive: true, force: true });
  };
}
