// Runs L1's ONNX files in onnxruntime-node, checks them against the torch outputs written by
// `make_model.py export` (W/*.cases.json + W/torch/*.f32), and writes <file>.ref.json with onnxruntime's outputs.
// Adapted from ../zoo/make_refs.mjs: 128,256-wide logits are stored as each position's argmax and top 8
// (id, logit) pairs, not in full (the full rows would be ~1.3 MB of JSON per position); the KV-cache
// presents are stored whole. The greedy case chains ORT's own presents and tokens.
//
//   node models/llama3-vocab-l1/make_refs.mjs WORK_DIR models/llama3-vocab-l1     (from the project root)
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const ort = require('onnxruntime-node');
const ORT_VERSION = ort.env.versions?.node ?? ort.env.versions?.common ?? '?';
const TOP = 8;

function f32num(v) { // shortest decimal that round-trips to the same float32
  if (v === 0) return 0;
  for (let p = 1; p <= 9; p++) { const n = Number(v.toPrecision(p)); if (Math.fround(n) === v) return n; }
  return v;
}
const readF32 = (work, t) => { const b = fs.readFileSync(path.join(work, t.file)); return new Float32Array(b.buffer, b.byteOffset, b.length / 4); };
const toOrt = (work, t) => t.dtype === 'int64'
  ? new ort.Tensor('int64', BigInt64Array.from(t.data.map(BigInt)), t.dims)
  : new ort.Tensor('float32', t.data ? Float32Array.from(t.data) : readF32(work, t), t.dims);
const full = (t) => ({ dims: [...t.dims], dtype: 'float32', data: Array.from(t.data, f32num) });
function compactLogits(t) {
  const V = t.dims.at(-1), rows = t.data.length / V, argmax = [], top = [];
  for (let p = 0; p < rows; p++) {
    const row = t.data.subarray(p * V, (p + 1) * V);
    const idx = Array.from({ length: TOP }, () => -1);
    for (let i = 0; i < V; i++) {
      if (idx[TOP - 1] >= 0 && row[i] <= row[idx[TOP - 1]]) continue;
      let k = TOP - 1; while (k > 0 && (idx[k - 1] < 0 || row[i] > row[idx[k - 1]])) { idx[k] = idx[k - 1]; k--; }
      idx[k] = i;
    }
    argmax.push(idx[0]); top.push(idx.map((i) => [i, f32num(row[i])]));
  }
  return { dims: [...t.dims], dtype: 'float32', argmax, top };
}

const [work, outDir] = process.argv.slice(2);
const agreement = [];
for (const f of fs.readdirSync(work).filter((f) => f.endsWith('.cases.json')).sort()) {
  const spec = JSON.parse(fs.readFileSync(path.join(work, f), 'utf8'));
  const sess = await ort.InferenceSession.create(path.join(outDir, spec.file));
  const a = { model: spec.model, file: spec.file, worst_logits: 0, worst_present: 0, runs: 0, positions: 0, argmax_mismatch: 0 };
  const cases = [];
  for (const c of spec.cases) {
    const steps = []; let prev = null;
    for (const st of c.steps) {
      const feeds = {}, inputs = {};
      for (const [k, t] of Object.entries(st.inputs)) {
        const chained = prev && k.startsWith('past_key_values.') ? prev[k.replace('past_key_values.', 'present.')] : null;
        feeds[k] = chained ?? toOrt(work, t);
        inputs[k] = feeds[k].type === 'int64' ? { dims: [...feeds[k].dims], dtype: 'int64', data: Array.from(feeds[k].data, Number) } : full(feeds[k]);
      }
      const out = await sess.run(feeds);
      a.runs++;
      const outputs = {};
      for (const [k, t] of Object.entries(st.outputs)) {
        const want = readF32(work, t), got = out[k].data;
        let d = 0; for (let i = 0; i < want.length; i++) d = Math.max(d, Math.abs(want[i] - got[i]));
        if (k === 'logits') {
          a.worst_logits = Math.max(a.worst_logits, d);
          const o = compactLogits(out[k]), w = compactLogits({ dims: t.dims, data: want });
          a.positions += o.argmax.length;
          a.argmax_mismatch += o.argmax.filter((x, i) => x !== w.argmax[i]).length;
          outputs[k] = o;
        } else { a.worst_present = Math.max(a.worst_present, d); outputs[k] = full(out[k]); }
      }
      steps.push({ inputs, outputs }); prev = out;
    }
    const rec = { name: c.name, ...(c.text !== undefined ? { text: c.text } : {}), steps };
    if (c.greedy_tokens) {
      const ortGreedy = steps.map((s) => s.outputs.logits.argmax.at(-1));
      if (JSON.stringify(ortGreedy) !== JSON.stringify(c.greedy_tokens)) throw new Error(`${spec.model}: ORT greedy ${ortGreedy} != torch ${c.greedy_tokens}`);
      for (let k = 1; k < steps.length; k++) if (steps[k].inputs.input_ids.data[0] !== ortGreedy[k - 1]) throw new Error('decode chain mismatch');
      rec.prompt_ids = steps[0].inputs.input_ids.data; rec.greedy_tokens = ortGreedy;
    }
    cases.push(rec);
  }
  const ref = {
    model: spec.model, file: spec.file, config: spec.config, opset: spec.opset, exporter: spec.exporter,
    runtime: `onnxruntime-node ${ORT_VERSION}, CPU execution provider, default session options (graphOptimizationLevel 'all')`,
    format: `cases[].steps[] = {inputs, outputs}; logits as {dims, argmax[position], top[position] = ${TOP} [id, logit] pairs, largest first}; other tensors {dims, dtype, data} row-major; float32 values as the shortest decimal that round-trips`,
    cases,
  };
  const out = path.join(outDir, spec.model + '.ref.json');
  fs.writeFileSync(out, JSON.stringify(ref));
  a.ref_bytes = fs.statSync(out).size;
  a.pass = a.worst_logits < 1e-4 && a.argmax_mismatch === 0;
  console.log(JSON.stringify(a)); agreement.push(a);
}
fs.writeFileSync(path.join(outDir, 'agreement.json'), JSON.stringify(agreement, null, 1) + '\n');
if (!agreement.every((a) => a.pass)) { console.error('AGREEMENT FAILED'); process.exit(1); }
