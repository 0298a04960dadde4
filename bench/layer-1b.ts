// One Llama-3.2-1B-shaped decoder layer on SEAL (`node dist/bench/index.js layer-1b [--dir DIR]`):
// hidden 2048, 32 query / 8 KV heads of 64, FFN 8192, Llama 3.1 RoPE scaling, synthetic weights of
// realistic scales (bench/llama-synth.ts randomLlamaWeights, fp32 in an external data file); the
// vocabulary is cut to 256 bytes (the head is a 2048 x 256 product, not 128k rows) and the RoPE table
// to 2,048 positions. A decode step after 16 cached tokens: compiled with N fixed at 16384, run
// encrypted on SEAL, and the same step on the CKKS simulator (the precision the plan predicts, noise
// and approximations included) and the float64 reference. Every step runs as the CLI, in its own
// process under /usr/bin/time -v (nice), one after another (the SEAL and sim runs peak at ~6 GB each:
// run together beside other jobs, the SEAL one was killed by the kernel's OOM killer), and is skipped
// when its output exists, so a run resumes. Writes bench/out/layer-1b.json. With --stream-weights the plan
// references the external data (compile --stream-weights) and the runs stream it: the files get a
// `-stream` suffix (plan-stream.json, out-seal-stream.json, ...; bench/out/layer-1b-stream.json).

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { inputsForTokens } from '../compiler/calibration-data.js';
import { loadModel } from '../compiler/driver.js';
import { exportOnnx } from '../compiler/onnx/export.js';
import { importOnnx } from '../compiler/onnx/import.js';
import { tensorsFromJson, tensorsToJson } from '../ir/tensor-json.js';
import { Tensor } from '../ir/tensor.js';
import { generatorBindings } from '../passes/canonical/specialize.js';
import { runGraph } from '../runtime/reference/interpreter.js';
import { buildLlamaGraph, LLAMA32_1B, randomLlamaWeights } from './llama-synth.js';

const PAST = 16;
const CALIBRATION = 'models/llama-byte-a/calibration.txt';
/** The step's 17 tokens come from here in the text: past the 4 calibration windows. */
const TEXT_OFFSET = 3000;

export interface LayerBenchOptions {
  dir: string;
  streamWeights: boolean;
}

export function layerBenchOptions(argv: string[]): LayerBenchOptions {
  const i = argv.indexOf('--dir');
  return { dir: i >= 0 && argv[i + 1] ? argv[i + 1]! : path.join(os.tmpdir(), 'fhec-layer-1b'), streamWeights: argv.includes('--stream-weights') };
}

interface Timed {
  wallS: number;
  cpuS: number;
  peakRssMB: number;
  cpuShare: number;
}

/** /usr/bin/time -v's figures from a log. */
function timedFrom(log: string): Timed {
  const text = fs.readFileSync(log, 'utf8');
  const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(text);
  const wallS = wall ? Number(wall[1] ?? 0) * 3600 + Number(wall[2]) * 60 + Number(wall[3]) : NaN;
  const cpuS = num(/User time \(seconds\): ([\d.]+)/) + num(/System time \(seconds\): ([\d.]+)/);
  return { wallS, cpuS, peakRssMB: num(/Maximum resident set size \(kbytes\): (\d+)/) / 1024, cpuShare: cpuS / wallS };
}

/** Runs the CLI under /usr/bin/time -v (nice) unless `done` exists; its output goes to `log`. */
function step(dir: string, done: string, log: string, args: string[]): Timed {
  if (!fs.existsSync(path.join(dir, done))) {
    console.error(`layer-1b: fhec ${args.join(' ')} (log ${path.join(dir, log)})`);
    const fd = fs.openSync(path.join(dir, log), 'w');
    const r = spawnSync('nice', ['/usr/bin/time', '-v', process.execPath, path.resolve('bin/fhec.js'), ...args], { cwd: dir, stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    if (r.status !== 0) throw new Error(`fhec ${args[0]} failed (exit ${r.status}): see ${path.join(dir, log)}`);
  }
  // An output made by hand (no log): no figures.
  return fs.existsSync(path.join(dir, log)) ? timedFrom(path.join(dir, log)) : { wallS: NaN, cpuS: NaN, peakRssMB: NaN, cpuShare: NaN };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

function argmax(a: ArrayLike<number>): number {
  let k = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[k]!) k = i;
  return k;
}

/** The last token's row of a [1, Nkv, T, H] cache (what the decode step computed). */
function newRow(t: Tensor): Float64Array {
  const [, heads, T, H] = t.dims as [number, number, number, number];
  const out = new Float64Array(heads * H);
  for (let h = 0; h < heads; h++) for (let j = 0; j < H; j++) out[h * H + j] = t.data[(h * T + T - 1) * H + j]!;
  return out;
}

export async function runLayerBench(o: LayerBenchOptions) {
  const dir = path.resolve(o.dir);
  fs.mkdirSync(dir, { recursive: true });
  const cfg = { ...LLAMA32_1B, dtype: 'float32' as const, kvCache: true, layers: 1, vocab: 256, maxPositions: 2048 };
  const model = 'llama-1b-l1-v256.onnx';
  if (!fs.existsSync(path.join(dir, model))) {
    exportOnnx(buildLlamaGraph(cfg, randomLlamaWeights(17, 'float32', cfg.rope)), path.join(dir, model), { externalData: { location: `${model}.data` } });
  }
  const x = o.streamWeights ? '-stream' : '';
  const planFile = `plan${x}.json`;
  const compile = step(dir, planFile, `compile${x}.log`, ['compile', model, '-o', planFile, '--calibration', path.resolve(CALIBRATION), '--decode', String(PAST), '--ring-degree', '16384', '--max-windows', '4', ...(o.streamWeights ? ['--stream-weights'] : [])]);
  // The decode step's inputs: 16 tokens prefilled by the reference interpreter make the cache.
  if (!fs.existsSync(path.join(dir, 'in.json'))) {
    const file = path.join(dir, model);
    const tokens = [...fs.readFileSync(CALIBRATION).subarray(TEXT_OFFSET, TEXT_OFFSET + PAST + 1)];
    const prefill = loadModel(file, { bindings: generatorBindings(importOnnx(file).graph, { kind: 'prefill', sequence: PAST }), verifyEach: false }).graph;
    const out = runGraph(prefill, inputsForTokens(prefill, tokens.slice(0, PAST), CALIBRATION));
    const inputs: Record<string, Tensor> = { input_ids: Tensor.from('int64', [1, 1], [tokens[PAST]!]), position_ids: Tensor.from('int64', [1, 1], [PAST]) };
    for (const [k, v] of Object.entries(out)) if (k.startsWith('present')) inputs[k.replace('present', 'past_key_values')] = v;
    fs.writeFileSync(path.join(dir, 'in.json'), JSON.stringify(tensorsToJson(inputs, 'inputs')));
  }
  const seal = step(dir, `out-seal${x}.json`, `run-seal${x}.log`, ['run', planFile, '--inputs', 'in.json', '--backend', 'seal', '--trace', `run-trace${x}.json`, '--out', `out-seal${x}.json`]);
  const sim = step(dir, `out-sim${x}.json`, `run-sim${x}.log`, ['run', planFile, '--inputs', 'in.json', '--backend', 'sim', '--out', `out-sim${x}.json`]);
  step(dir, 'out-f64.json', 'eval.log', ['eval', model, '--inputs', 'in.json', '--out', 'out-f64.json']);

  const read = (f: string) => tensorsFromJson(JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')), 'outputs', f);
  const [ref, enc, simulated] = [read('out-f64.json'), read(`out-seal${x}.json`), read(`out-sim${x}.json`)];
  const outputs = Object.keys(ref).map((name) => {
    const pick = (t: Tensor) => (t.dims.length === 4 ? newRow(t) : Float64Array.from(t.data));
    const [r, e, s] = [pick(ref[name]!), pick(enc[name]!), pick(simulated[name]!)];
    return { name, values: r.length, maxAbs: maxAbs(r), sealMaxAbsError: maxAbsDiff(e, r), simMaxAbsError: maxAbsDiff(s, r), ...(name === 'logits' ? { argmax: { f64: argmax(r), seal: argmax(e), sim: argmax(s) } } : {}) };
  });
  const plan = JSON.parse(fs.readFileSync(path.join(dir, planFile), 'utf8')) as { analysis: { predicted: { totalMs: number } }; params: { ringDegree: number; bitSizes: number[] }; refreshPoints: unknown[] };
  const runLog = fs.readFileSync(path.join(dir, `run-seal${x}.log`), 'utf8');
  const sidecar = path.join(dir, planFile.replace(/\.json$/, '.weights.bin'));
  const m = /(\d+) ops in ([\d.]+) s/.exec(runLog);
  const r = {
    date: new Date().toISOString(),
    shape: { hidden: cfg.hidden, heads: cfg.heads, kvHeads: cfg.kvHeads, headDim: cfg.headDim, ffn: cfg.ffn, layers: 1, vocab: cfg.vocab, past: PAST },
    params: { ringDegree: plan.params.ringDegree, bitSizes: plan.params.bitSizes },
    streamWeights: o.streamWeights,
    planBytes: { json: fs.statSync(path.join(dir, planFile)).size, weights: fs.statSync(sidecar).size },
    streamed: /streamed weights[^\n]*/.exec(runLog)?.[0] ?? null,
    refreshes: plan.refreshPoints.length,
    predictedS: plan.analysis.predicted.totalMs / 1000,
    seal: { ops: m ? Number(m[1]) : NaN, evaluateWallS: m ? Number(m[2]) : NaN, process: seal },
    compile,
    sim: sim,
    outputs,
    loadAverage: os.loadavg(),
  };
  fs.mkdirSync('bench/out', { recursive: true });
  fs.writeFileSync(`bench/out/layer-1b${x}.json`, JSON.stringify(r, null, 2));
  return r;
}

export function printLayerBench(r: Awaited<ReturnType<typeof runLayerBench>>): void {
  console.log(`\n## One Llama-3.2-1B-shaped decoder layer, decode after ${r.shape.past}, SEAL N=${r.params.ringDegree} [${r.params.bitSizes.join(', ')}]`);
  console.log(`plan ${(r.planBytes.json / 2 ** 20).toFixed(1)} MiB + weights file ${(r.planBytes.weights / 2 ** 20).toFixed(1)} MiB${r.streamWeights ? ' (weights streamed from the model\'s external data)' : ''}${r.streamed ? `; ${r.streamed}` : ''}`);
  console.log(`predicted ${r.predictedS.toFixed(1)} s (1 core); SEAL evaluation ${r.seal.evaluateWallS.toFixed(1)} s wall (${r.seal.ops} ops), process ${r.seal.process.cpuS.toFixed(1)} CPU-s in ${r.seal.process.wallS.toFixed(0)} s wall (CPU share ${r.seal.process.cpuShare.toFixed(2)}), peak ${r.seal.process.peakRssMB.toFixed(0)} MB`);
  console.log('| output | values | max abs (f64) | SEAL max abs error | sim max abs error (predicted) |');
  console.log('|---|---:|---:|---:|---:|');
  for (const o of r.outputs) console.log(`| ${o.name}${o.argmax ? ` (argmax f64 ${o.argmax.f64}, SEAL ${o.argmax.seal}, sim ${o.argmax.sim})` : ''} | ${o.values} | ${o.maxAbs.toPrecision(3)} | ${o.sealMaxAbsError.toExponential(2)} | ${o.simMaxAbsError.toExponential(2)} |`);
}
