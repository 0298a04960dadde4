// Section `inspect-8b` (README "Benchmarks", "fhec inspect on a Llama-3-8B-shaped model"): runs the built
// bench, `node dist/bench/index.js inspect` (`npm run figures` builds first; the bench times the built
// CLI in a process of its own), and reads what it wrote to bench/out/results.json.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { it } from 'vitest';
import type { InspectBenchResult } from '../bench/llama8b-inspect.js';
import { ROOT } from '../test/helpers/shared.js';
import { writeSection } from './record.js';

it('inspect-8b: fhec inspect on a Llama-3-8B-shaped model', () => {
  const t0 = performance.now();
  execFileSync(process.execPath, ['dist/bench/index.js', 'inspect'], { cwd: ROOT, stdio: 'inherit' });
  const r = (JSON.parse(fs.readFileSync(path.join(ROOT, 'bench', 'out', 'results.json'), 'utf8')) as { inspect: InspectBenchResult }).inspect;
  writeSection('inspect-8b', t0, ['npm run build && node dist/bench/index.js inspect (bench/llama8b-inspect.ts)'], {
    parameters: r.parameters,
    externalGiB: r.externalBytes / 2 ** 30,
    modelKiB: r.modelBytes / 1024,
    inspectSeconds: r.inspectSeconds,
    inspectPeakRssMB: r.inspectMaxRssMB,
  });
});
