// Benchmark: `fhec inspect` on a Llama-3-8B-shaped ONNX file whose 16 GB of weights live in a sparse
// external data file (never written). Prints wall time and peak memory (max RSS) of the CLI process.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportOnnx } from '../compiler/onnx/export.js';
import { buildLlamaGraph, LLAMA3_8B } from './llama-synth.js';

export interface InspectBenchResult {
  model: string;
  parameters: number;
  externalBytes: number;
  modelBytes: number;
  writeSeconds: number;
  inspectSeconds: number;
  inspectMaxRssMB: number;
}

export function runInspectBench(): InspectBenchResult {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-llama8b-'));
  try {
    const file = path.join(dir, 'llama3-8b.onnx');
    const t0 = performance.now();
    const { modelBytes, externalBytes } = exportOnnx(buildLlamaGraph(LLAMA3_8B), file, {
      externalData: { location: 'llama3-8b.onnx.data', sparse: true },
    });
    const writeSeconds = (performance.now() - t0) / 1000;
    const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'compiler', 'cli.js');
    // Run the CLI in its own process and report that process's wall time and peak RSS.
    const script = `const t=performance.now();const m=await import(${JSON.stringify(cli)});await m.main(['node','fhec','inspect',${JSON.stringify(file)},'--json']);` +
      `process.stderr.write('\\nBENCH '+JSON.stringify({s:(performance.now()-t)/1000,rss:process.resourceUsage().maxRSS}));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', maxBuffer: 1 << 28 });
    if (r.status !== 0) throw new Error(`inspect failed: ${r.stderr}`);
    const m = /BENCH (.*)$/.exec(r.stderr)!;
    const stats = JSON.parse(m[1]!) as { s: number; rss: number };
    const report = JSON.parse(r.stdout) as { parameters: { count: number } };
    return {
      model: 'Llama-3-8B shapes (32 layers, hidden 4096, 32/8 heads, FFN 14336, vocab 128256, fp16)',
      parameters: report.parameters.count,
      externalBytes,
      modelBytes,
      writeSeconds,
      inspectSeconds: stats.s,
      inspectMaxRssMB: stats.rss / 1024,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
