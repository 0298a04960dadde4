// Runs the zoo's ONNX files in onnxruntime-node, checks them against the torch outputs written by
// `make_zoo.py export`, and writes <file>.ref.json (ORT outputs). Adapted from ../shared/models/make_refs.mjs
// (the same checks and format; the agreement figures are merged into agreement.json by file name).
//
//   node models/zoo/make_refs.mjs WORK_DIR models/zoo [name ...]    (from the project root)
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url); // the project's node_modules
const ort = require('onnxruntime-node');

const ORT_VERSION = ort.env.versions?.node ?? ort.env.versions?.common ?? '?';

// shortest decimal that round-trips to the same float32
function f32num(v) {
  if (!Number.isFinite(v)) throw new Error('non-finite value ' + v);
  if (v === 0) return 0;
  for (let p = 1; p <= 9; p++) {
    const n = Number(v.toPrecision(p));
    if (Math.fround(n) === v) return n;
  }
  return v;
}
function toOrt(t) {
  if (t.dtype === 'int64') return new ort.Tensor('int64', BigInt64Array.from(t.data.map(x => BigInt(x))), t.dims);
  if (t.dtype === 'float32') return new ort.Tensor('float32', Float32Array.from(t.data), t.dims);
  throw new Error('dtype ' + t.dtype);
}
function fromOrt(t) {
  if (t.type === 'float32') return { dims: [...t.dims], dtype: 'float32', data: Array.from(t.data, f32num) };
  if (t.type === 'int64') return { dims: [...t.dims], dtype: 'int64', data: Array.from(t.data, Number) };
  throw new Error('type ' + t.type);
}
function maxAbsDiff(a, b) {
  if (JSON.stringify(a.dims) !== JSON.stringify(b.dims)) return Infinity;
  let m = 0;
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(a.data[i] - b.data[i]));
  return m;
}
const argmaxLast = (t) => { const V = t.dims.at(-1), d = t.data, off = d.length - V; let bi = 0; for (let i = 1; i < V; i++) if (d[off + i] > d[off + bi]) bi = i; return bi; };

async function refsForModel(workDir, onnxDir, name) {
  const spec = JSON.parse(fs.readFileSync(path.join(workDir, name + '.cases.json'), 'utf8'));
  const file = path.join(onnxDir, spec.file);
  const sess = await ort.InferenceSession.create(file);                                   // default: all graph optimizations
  const sessRaw = await ort.InferenceSession.create(file, { graphOptimizationLevel: 'disabled' });
  const run = async (s, inputs) => {
    const feeds = {}; for (const [k, v] of Object.entries(inputs)) feeds[k] = toOrt(v);
    const r = await s.run(feeds); const out = {}; for (const k of s.outputNames) out[k] = fromOrt(r[k]); return out;
  };
  const agreement = { model: name, file: spec.file, worst_logits: 0, worst_present: 0, worst_raw_vs_opt: 0, runs: 0, argmax_mismatch: 0 };
  const note = (torchOut, ortOut, rawOut) => {
    agreement.runs++;
    for (const k of Object.keys(torchOut)) {
      const d = maxAbsDiff(torchOut[k], ortOut[k]);
      if (k === 'logits') agreement.worst_logits = Math.max(agreement.worst_logits, d); else agreement.worst_present = Math.max(agreement.worst_present, d);
      agreement.worst_raw_vs_opt = Math.max(agreement.worst_raw_vs_opt, maxAbsDiff(rawOut[k], ortOut[k]));
    }
    // argmax agreement at every position
    const t = torchOut.logits, o = ortOut.logits, V = t.dims.at(-1);
    for (let p = 0; p < t.data.length / V; p++) {
      let bt = 0, bo = 0;
      for (let i = 1; i < V; i++) { if (t.data[p * V + i] > t.data[p * V + bt]) bt = i; if (o.data[p * V + i] > o.data[p * V + bo]) bo = i; }
      if (bt !== bo) agreement.argmax_mismatch++;
    }
  };
  const cases = [];
  for (const c of spec.cases) {
    const steps = [];
    let prevOut = null;
    for (const st of c.steps) {
      const inputs = structuredClone(st.inputs);
      if (prevOut) { // chain ORT's own present tensors into the next step's past
        for (const k of Object.keys(inputs)) if (k.startsWith('past_key_values.')) inputs[k] = prevOut[k.replace('past_key_values.', 'present.')];
      }
      const out = await run(sess, inputs);
      const raw = await run(sessRaw, inputs);
      note(st.outputs, out, raw);
      steps.push({ inputs, outputs: out });
      prevOut = out;
    }
    const rec = { name: c.name, text: c.text, steps };
    if (c.greedy_bytes) {
      rec.greedy_bytes = c.greedy_bytes; rec.greedy_text = c.greedy_text;
      const ortGreedy = steps.map(s => argmaxLast(s.outputs.logits));
      if (JSON.stringify(ortGreedy) !== JSON.stringify(c.greedy_bytes)) throw new Error(`${name}: ORT greedy ${ortGreedy} != torch ${c.greedy_bytes}`);
      // the input byte of decode step k must be ORT's argmax of step k-1
      for (let k = 1; k < steps.length; k++) if (steps[k].inputs.input_ids.data[0] !== ortGreedy[k - 1]) throw new Error('decode chain mismatch');
    }
    cases.push(rec);
  }
  for (const c of spec.checks) {
    const out = await run(sess, c.inputs);
    const raw = await run(sessRaw, c.inputs);
    note(c.outputs, out, raw);
  }
  agreement.checked_inputs = spec.cases.map(c => c.name + `(${c.steps.length} run${c.steps.length > 1 ? 's' : ''})`).concat(spec.checks.map(c => c.name));
  const ref = {
    model: name, file: spec.file, config: spec.config, opset: spec.opset, exporter: spec.exporter,
    runtime: `onnxruntime-node ${ORT_VERSION}, CPU execution provider, default session options (graphOptimizationLevel 'all')`,
    format: 'cases[].steps[] = {inputs, outputs}; each tensor {dims, dtype, data} with data flattened row-major; float32 values written as the shortest decimal that round-trips to the same float32. All logits positions are stored.',
    cases,
  };
  const outPath = path.join(onnxDir, name + '.ref.json');
  fs.writeFileSync(outPath, JSON.stringify(ref));
  agreement.ref_bytes = fs.statSync(outPath).size;
  agreement.pass = agreement.worst_logits < 1e-4 && agreement.argmax_mismatch === 0;
  return agreement;
}

const [workDir, onnxDir, ...names] = process.argv.slice(2);
const list = names.length ? names : fs.readdirSync(workDir).filter(f => f.endsWith('.cases.json')).map(f => f.replace('.cases.json', ''));
const agreementPath = path.join(onnxDir, 'agreement.json');
const all = new Map(fs.existsSync(agreementPath) ? JSON.parse(fs.readFileSync(agreementPath, 'utf8')).map(a => [a.model, a]) : []);
const results = [];
for (const n of list) { const a = await refsForModel(workDir, onnxDir, n); console.log(JSON.stringify(a)); results.push(a); all.set(n, a); }
fs.writeFileSync(agreementPath, JSON.stringify([...all.values()].sort((x, y) => x.model.localeCompare(y.model)), null, 1) + '\n');
if (!results.every(r => r.pass)) { console.error('AGREEMENT FAILED'); process.exit(1); }
