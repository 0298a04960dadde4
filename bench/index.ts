// `npm run bench`: runs every benchmark, prints tables, writes JSON to bench/out/.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCkksOpsBench } from './ckks-ops.js';
import { runInspectBench } from './llama8b-inspect.js';

function machine(): string {
  return `${os.cpus()[0]?.model ?? 'cpu'} x${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
}

const only = process.argv[2];
const results: Record<string, unknown> = { machine: machine(), date: new Date().toISOString() };
fs.mkdirSync('bench/out', { recursive: true });

if (!only || only === 'inspect') {
  const r = runInspectBench();
  results.inspect = r;
  console.log(`\n## fhec inspect on a Llama-3-8B-shaped model (${machine()})`);
  console.log(`| parameters | external data | .onnx | write (s) | inspect wall (s) | inspect peak RSS (MB) |`);
  console.log(`|---:|---:|---:|---:|---:|---:|`);
  console.log(`| ${r.parameters.toLocaleString('en-US')} | ${(r.externalBytes / 2 ** 30).toFixed(1)} GiB (sparse) | ${(r.modelBytes / 1024).toFixed(0)} KiB | ${r.writeSeconds.toFixed(2)} | ${r.inspectSeconds.toFixed(2)} | ${r.inspectMaxRssMB.toFixed(0)} |`);
}

if (!only || only === 'ckks') {
  results.ckks = await runCkksOpsBench(); // prints its own table
}

fs.writeFileSync(path.join('bench/out', 'results.json'), JSON.stringify(results, null, 2));
console.log('\nwrote bench/out/results.json');
