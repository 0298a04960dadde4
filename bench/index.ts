// `npm run bench`: runs every benchmark, prints tables, writes JSON to bench/out/.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCkksOpsBench } from './ckks-ops.js';
import { generateBenchOptions, printGenerateBench, runGenerateBench } from './generate.js';
import { runInspectBench } from './llama8b-inspect.js';
import { printServeLoad, runServeLoad, serveLoadOptions } from './serve-load.js';
import { printProtocolBench, protocolBenchOptions, runProtocolBench } from './protocol.js';
import { planBenchOptions, printPlanBench, runPlanBench } from './generation-plan.js';
import { bucketBenchOptions, printBucketBench, runBucketBench } from './decode-buckets.js';
import { layerBenchOptions, printLayerBench, runLayerBench } from './layer-1b.js';
import { parallelBoundOptions, printParallelBound, runParallelBound } from './parallel-bound.js';

function machine(): string {
  return `${os.cpus()[0]?.model ?? 'cpu'} x${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
}

// `node dist/bench/index.js [inspect|ckks|plan|generate] [--decode-steps N ...]`: one bench, or all of them.
const only = process.argv[2]?.startsWith('-') ? undefined : process.argv[2];
fs.mkdirSync('bench/out', { recursive: true });
const resultsFile = path.join('bench/out', 'results.json');
// Running one bench keeps the other benches' last sections (each carries its own date).
const previous = only && fs.existsSync(resultsFile) ? (JSON.parse(fs.readFileSync(resultsFile, 'utf8')) as Record<string, unknown>) : {};
const results: Record<string, unknown> = { ...previous, machine: machine(), date: new Date().toISOString() };

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

if (!only || only === 'plan') {
  // Compile time of a generation plan and what one decode token asks of the key holder (no SEAL run).
  const r = runPlanBench(planBenchOptions(process.argv.slice(2)));
  results.plan = r;
  printPlanBench(r);
}

if (!only || only === 'generate') {
  // Encrypted generation on SEAL, several minutes: prefill + decode steps, vs onnxruntime and the reference.
  const r = await runGenerateBench({ ...generateBenchOptions(process.argv.slice(2)), machine: machine() });
  results.generate = r;
  printGenerateBench(r);
  console.log('wrote bench/out/generate.json');
}

// Only on request (tens of minutes, 1.5 GB of plan weights): one Llama-3.2-1B-shaped layer on SEAL.
if (only === 'layer-1b') {
  const r = await runLayerBench(layerBenchOptions(process.argv.slice(3)));
  results.layer1b = r;
  printLayerBench(r);
  console.log(`wrote bench/out/layer-1b${r.streamWeights ? '-stream' : ''}.json`);
}

// Only on request (it needs a generation plan): `node dist/bench/index.js serve --plan PLAN ...`.
if (only === 'serve') {
  const r = await runServeLoad(serveLoadOptions(process.argv.slice(3)));
  results.serve = r;
  printServeLoad(r);
}

// Only on request (it needs a step plan): `node dist/bench/index.js parallel-bound --plan STEP.json [--workers 2,4]`.
if (only === 'parallel-bound') {
  const r = runParallelBound(parallelBoundOptions(process.argv.slice(3)));
  results.parallelBound = r;
  printParallelBound(r);
}

// Only on request (it needs a generation plan): `node dist/bench/index.js buckets --plan GEN.json --past P ...`.
if (only === 'buckets') {
  const r = await runBucketBench(bucketBenchOptions(process.argv.slice(3)));
  results.buckets = r;
  printBucketBench(r);
}

// Only on request: `node dist/bench/index.js protocol --plan PLAN [--backend sim|seal]`, round trips and bytes per token, batched vs not.
if (only === 'protocol') {
  const r = await runProtocolBench(protocolBenchOptions(process.argv.slice(3)));
  results.protocol = r;
  printProtocolBench(r);
}

fs.writeFileSync(resultsFile, JSON.stringify(results, null, 2));
console.log('\nwrote bench/out/results.json');
