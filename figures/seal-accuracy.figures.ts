// Section `seal-accuracy` (README "Conformance and accuracy", row "model A on SEAL, teacher-forced,
// 40-bit refresh masks"): the README's two commands as they are, through the built CLI (`npm run
// figures` builds first): `fhec compile models/llama-byte-a/model.onnx -o s64.json --calibration
// models/llama-byte-a/calibration.txt --prefill 64` then `fhec accuracy ... --text eval-dev.txt
// --windows 4 --backend seal --json`. About an hour on 2 shared cores.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { it } from 'vitest';
import { ROOT } from '../test/helpers/shared.js';
import { writeSection } from './record.js';

it('seal-accuracy: model A prefill 64 on SEAL, 4 windows of eval-dev.txt', () => {
  const t0 = performance.now();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-figures-seal-'));
  const plan = path.join(dir, 's64.json');
  const json = path.join(dir, 'accuracy.json');
  const compile = ['compile', 'models/llama-byte-a/model.onnx', '-o', plan, '--calibration', 'models/llama-byte-a/calibration.txt', '--prefill', '64'];
  const accuracy = ['accuracy', 'models/llama-byte-a/model.onnx', plan, '--text', '../shared/models/eval-dev.txt', '--windows', '4', '--backend', 'seal', '--json', json];
  const fhec = (args: string[]) => execFileSync(process.execPath, ['bin/fhec.js', ...args], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 });
  fhec(compile);
  const compileSeconds = (performance.now() - t0) / 1000;
  const doc = JSON.parse(fs.readFileSync(plan, 'utf8')) as { params: { ringDegree: number; bitSizes: number[] }; refreshPoints?: unknown[] };
  const t1 = performance.now();
  fhec(accuracy);
  const acc = JSON.parse(fs.readFileSync(json, 'utf8')) as { encrypted: boolean; positions: number; agree: number; agreement: number; maxAbsError: number; meanAbsError: number; warnings: string[] };
  writeSection('seal-accuracy', t0, [`fhec ${compile.join(' ').replace(plan, 's64.json')}`, `fhec ${accuracy.join(' ').replace(plan, 's64.json').replace(json, 'accuracy.json')}`], {
    ringDegree: doc.params.ringDegree,
    levels: doc.params.bitSizes.length - 2,
    refreshes: doc.refreshPoints?.length ?? 0,
    encrypted: acc.encrypted,
    positions: acc.positions,
    agree: acc.agree,
    agreement: acc.agreement,
    maxAbsError: acc.maxAbsError,
    meanAbsError: acc.meanAbsError,
    rangeWarnings: acc.warnings.length,
    compileSeconds,
    accuracySeconds: (performance.now() - t1) / 1000,
  }, { chain: doc.params.bitSizes });
  fs.rmSync(dir, { recursive: true, force: true });
});
