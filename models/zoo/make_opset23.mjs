// Writes the opset-23 export style of a zoo model: the same weights as its TorchScript export, but with
// the ONNX 23 ops RMSNormalization, RotaryEmbedding and Attention (GQA, is_causal, KV cache), as
// newer exporters emit them. Then runs onnxruntime on the inputs of the original reference cases,
// checks the logits (and presents) against the original reference, and writes <name>.ref.json.
// Adapted from ../shared/models/make_opset23.mjs: the source files are found by prefix whatever their
// opset, and a tied model's lm_head is the embedding matrix itself (Transpose -> MatMul), as in Llama 3.2.
//
//   node models/zoo/make_opset23.mjs models/zoo Z6   (from the project root)
//   -> Z6_nocache_opset23.onnx, Z6_kvcache_opset23.onnx (+ .ref.json)
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url); // the project's node_modules
const { onnx } = require('onnx-proto');
const ort = require('onnxruntime-node');

const [dir, prefix] = process.argv.slice(2);
// the TorchScript exports of the model (any opset but 23)
const sourceOf = (kind) => {
  const re = new RegExp(`^${prefix}_${kind}_opset(\\d+)\\.onnx$`);
  const f = fs.readdirSync(dir).find(x => re.test(x) && !x.includes('opset23'));
  if (!f) throw new Error(`no ${prefix}_${kind}_opset*.onnx in ${dir}`);
  return f.replace(/\.onnx$/, '');
};
const srcNo = sourceOf('nocache'), srcKv = sourceOf('kvcache');
const src = onnx.ModelProto.decode(fs.readFileSync(path.join(dir, `${srcNo}.onnx`)));
const refNo = JSON.parse(fs.readFileSync(path.join(dir, `${srcNo}.ref.json`), 'utf8'));
const refKv = JSON.parse(fs.readFileSync(path.join(dir, `${srcKv}.ref.json`), 'utf8'));
const cfg = refNo.config;
const L = cfg.num_hidden_layers, H = cfg.hidden_size, nq = cfg.num_attention_heads, nkv = cfg.num_key_value_heads;
const hd = H / nq, eps = cfg.rms_norm_eps, theta = cfg.rope_theta, MAXPOS = 256;

// ---- weights of the source export, found by the exporter's scoped node names
const inits = new Map(src.graph.initializer.map(t => [t.name, t]));
function f32(t) {
  if (t.rawData?.length) { const b = Buffer.from(t.rawData); return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)); }
  return Float32Array.from(t.floatData);
}
const dimsOf = t => t.dims.map(Number);
const matmulWeight = {}; // node name -> [in, out] initializer
for (const n of src.graph.node) if (n.opType === 'MatMul' && inits.has(n.input[1])) matmulWeight[n.name] = inits.get(n.input[1]);
const need = name => { const t = matmulWeight[name]; if (!t) throw new Error('no MatMul weight at ' + name); return t; };

// ---- graph builder
const T = onnx.TensorProto.DataType;
const nodes = [], initializers = [];
let nid = 0;
function tensor(name, dims, data, type = T.FLOAT) {
  const raw = type === T.FLOAT ? Buffer.from(Float32Array.from(data).buffer) : Buffer.from(BigInt64Array.from(data.map(BigInt)).buffer);
  initializers.push(onnx.TensorProto.create({ name, dims, dataType: type, rawData: raw }));
  return name;
}
function attr(name, v) {
  const A = onnx.AttributeProto.AttributeType;
  if (Array.isArray(v)) return onnx.AttributeProto.create({ name, type: A.INTS, ints: v });
  if (Number.isInteger(v) && name !== 'epsilon' && name !== 'scale') return onnx.AttributeProto.create({ name, type: A.INT, i: v });
  return onnx.AttributeProto.create({ name, type: A.FLOAT, f: v });
}
function node(op, scope, inputs, nOut = 1, attrs = {}, outNames) {
  const name = `${scope}/${op}${nid ? '_' + nid : ''}`; nid++;
  const outputs = outNames ?? Array.from({ length: nOut }, (_, i) => `${name}_output_${i}`);
  nodes.push(onnx.NodeProto.create({ name, opType: op, input: inputs, output: outputs, attribute: Object.entries(attrs).map(([k, v]) => attr(k, v)) }));
  return nOut === 1 ? outputs[0] : outputs;
}
// a linear layer as newer exporters write it: the torch weight [out, in], transposed in the graph
function linear(x, srcNode, hfName, scope) {
  const t = need(srcNode); const [i, o] = dimsOf(t); const w = f32(t);
  const wt = new Float32Array(o * i); for (let r = 0; r < i; r++) for (let c = 0; c < o; c++) wt[c * i + r] = w[r * o + c];
  const wname = tensor(hfName, [o, i], wt);
  const tr = node('Transpose', scope, [wname], 1, { perm: [1, 0] });
  return node('MatMul', scope, [x, tr]);
}
const copy = (name) => { const t = inits.get(name); if (!t) throw new Error('missing ' + name); return tensor(name, dimsOf(t), f32(t)); };

function build(kv) {
  nodes.length = 0; initializers.length = 0; nid = 0;
  const inv = Array.from({ length: hd / 2 }, (_, i) => 1 / theta ** ((2 * i) / hd));
  const cos = [], sin = [];
  for (let p = 0; p < MAXPOS; p++) for (const f of inv) { const a = Math.fround(p) * Math.fround(f); cos.push(Math.cos(a)); sin.push(Math.sin(a)); }
  tensor('cos_cache', [MAXPOS, hd / 2], cos); tensor('sin_cache', [MAXPOS, hd / 2], sin);
  const embed = copy('model.embed_tokens.weight');
  let x = node('Gather', '/model/embed_tokens', [embed, 'input_ids']);
  let pos = 'position_ids';
  if (!kv) { // positions 0..S-1 from the input's shape
    tensor('zero', [], [0], T.INT64); tensor('one', [], [1], T.INT64); tensor('axes0', [1], [0], T.INT64); tensor('idx1', [], [1], T.INT64);
    const shp = node('Shape', '/model', ['input_ids']);
    const s = node('Gather', '/model', [shp, 'idx1'], 1, { axis: 0 });
    const r = node('Range', '/model', ['zero', s, 'one']);
    pos = node('Unsqueeze', '/model', [r, 'axes0']);
  }
  const outputs = [];
  for (let l = 0; l < L; l++) {
    const sc = `/model/layers.${l}`;
    const h = node('RMSNormalization', `${sc}/input_layernorm`, [x, copy(`model.layers.${l}.input_layernorm.weight`)], 1, { axis: -1, epsilon: eps });
    const q = linear(h, `${sc}/self_attn/q_proj/MatMul`, `model.layers.${l}.self_attn.q_proj.weight`, `${sc}/self_attn/q_proj`);
    const k = linear(h, `${sc}/self_attn/k_proj/MatMul`, `model.layers.${l}.self_attn.k_proj.weight`, `${sc}/self_attn/k_proj`);
    const v = linear(h, `${sc}/self_attn/v_proj/MatMul`, `model.layers.${l}.self_attn.v_proj.weight`, `${sc}/self_attn/v_proj`);
    const qr = node('RotaryEmbedding', `${sc}/self_attn`, [q, 'cos_cache', 'sin_cache', pos], 1, { num_heads: nq, interleaved: 0 });
    const kr = node('RotaryEmbedding', `${sc}/self_attn`, [k, 'cos_cache', 'sin_cache', pos], 1, { num_heads: nkv, interleaved: 0 });
    const attnIn = [qr, kr, v];
    const aAttrs = { q_num_heads: nq, kv_num_heads: nkv, is_causal: 1, scale: 1 / Math.sqrt(hd) };
    let y;
    if (kv) {
      attnIn.push('', `past_key_values.${l}.key`, `past_key_values.${l}.value`);
      [y] = node('Attention', `${sc}/self_attn`, attnIn, 3, aAttrs, [`${sc}/self_attn/Attention_output_0`, `present.${l}.key`, `present.${l}.value`]);
      outputs.push(`present.${l}.key`, `present.${l}.value`);
    } else y = node('Attention', `${sc}/self_attn`, attnIn, 1, aAttrs);
    const o = linear(y, `${sc}/self_attn/o_proj/MatMul`, `model.layers.${l}.self_attn.o_proj.weight`, `${sc}/self_attn/o_proj`);
    x = node('Add', sc, [x, o]);
    const h2 = node('RMSNormalization', `${sc}/post_attention_layernorm`, [x, copy(`model.layers.${l}.post_attention_layernorm.weight`)], 1, { axis: -1, epsilon: eps });
    const g = linear(h2, `${sc}/mlp/gate_proj/MatMul`, `model.layers.${l}.mlp.gate_proj.weight`, `${sc}/mlp/gate_proj`);
    const u = linear(h2, `${sc}/mlp/up_proj/MatMul`, `model.layers.${l}.mlp.up_proj.weight`, `${sc}/mlp/up_proj`);
    const silu = node('Mul', `${sc}/mlp/act_fn`, [g, node('Sigmoid', `${sc}/mlp/act_fn`, [g])]);
    const d = linear(node('Mul', `${sc}/mlp`, [silu, u]), `${sc}/mlp/down_proj/MatMul`, `model.layers.${l}.mlp.down_proj.weight`, `${sc}/mlp/down_proj`);
    x = node('Add', sc, [x, d]);
  }
  const hn = node('RMSNormalization', '/model/norm', [x, copy('model.norm.weight')], 1, { axis: -1, epsilon: eps });
  const logits = cfg.tie_word_embeddings
    ? node('MatMul', '/lm_head', [hn, node('Transpose', '/lm_head', [embed], 1, { perm: [1, 0] })])
    : linear(hn, '/model/lm_head/MatMul', 'lm_head.weight', '/lm_head');
  nodes.push(onnx.NodeProto.create({ name: '/lm_head/Identity', opType: 'Identity', input: [logits], output: ['logits'] }));

  const vi = (name, type, dims) => onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: type, shape: { dim: dims.map(d => typeof d === 'string' ? { dimParam: d } : { dimValue: d }) } } } });
  const inputs = [vi('input_ids', T.INT64, [1, 'sequence_length'])];
  if (kv) {
    inputs.push(vi('position_ids', T.INT64, [1, 'sequence_length']));
    for (let l = 0; l < L; l++) for (const s of ['key', 'value']) inputs.push(vi(`past_key_values.${l}.${s}`, T.FLOAT, [1, nkv, 'past_sequence_length', hd]));
  }
  const outs = [vi('logits', T.FLOAT, [1, 'sequence_length', cfg.vocab_size])];
  for (const o of outputs) outs.push(vi(o, T.FLOAT, [1, nkv, 'total_sequence_length', hd]));
  return onnx.ModelProto.create({
    irVersion: 11, producerName: 'fhec test models (make_opset23.mjs)', producerVersion: '1',
    opsetImport: [{ domain: '', version: 23 }],
    graph: { name: `${prefix}_${kv ? 'kvcache' : 'nocache'}_opset23`, node: nodes.slice(), initializer: initializers.slice(), input: inputs, output: outs },
  });
}

// ---- references
function f32num(v) { if (v === 0) return 0; for (let p = 1; p <= 9; p++) { const n = Number(v.toPrecision(p)); if (Math.fround(n) === v) return n; } return v; }
const toOrt = t => t.dtype === 'int64' ? new ort.Tensor('int64', BigInt64Array.from(t.data.map(BigInt)), t.dims) : new ort.Tensor('float32', Float32Array.from(t.data), t.dims);
const fromOrt = t => ({ dims: [...t.dims], dtype: 'float32', data: Array.from(t.data, f32num) });
const maxDiff = (a, b) => { if (JSON.stringify(a.dims) !== JSON.stringify(b.dims)) return Infinity; let m = 0; for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(a.data[i] - b.data[i])); return m; };
const argmaxLast = t => { const V = t.dims.at(-1), d = t.data, off = d.length - V; let b = 0; for (let i = 1; i < V; i++) if (d[off + i] > d[off + b]) b = i; return b; };

const report = [];
for (const kv of [false, true]) {
  const name = `${prefix}_${kv ? 'kvcache' : 'nocache'}_opset23`;
  const file = path.join(dir, name + '.onnx');
  fs.writeFileSync(file, onnx.ModelProto.encode(build(kv)).finish());
  const sess = await ort.InferenceSession.create(file);
  const orig = kv ? refKv : refNo;
  let worstLogit = 0, worstPresent = 0, greedyMismatch = 0, runs = 0;
  const cases = [];
  for (const c of orig.cases) {
    const steps = []; let prev = null;
    for (const st of c.steps) {
      const inputs = {};
      for (const [k, v] of Object.entries(st.inputs)) {
        if (k === 'attention_mask') continue; // batch 1 without padding: the causal flag covers it
        inputs[k] = prev && k.startsWith('past_key_values.') ? prev[k.replace('past_key_values.', 'present.')] : v;
      }
      const feeds = {}; for (const [k, v] of Object.entries(inputs)) feeds[k] = toOrt(v);
      const r = await sess.run(feeds); const out = {}; for (const k of sess.outputNames) out[k] = fromOrt(r[k]);
      for (const k of Object.keys(out)) {
        const d = maxDiff(out[k], st.outputs[k]);
        if (k === 'logits') worstLogit = Math.max(worstLogit, d); else worstPresent = Math.max(worstPresent, d);
      }
      if (argmaxLast(out.logits) !== argmaxLast(st.outputs.logits)) greedyMismatch++;
      runs++;
      steps.push({ inputs, outputs: out }); prev = out;
    }
    const rec = { name: c.name, text: c.text, steps };
    if (c.greedy_bytes) { rec.greedy_bytes = c.greedy_bytes; rec.greedy_text = c.greedy_text; }
    cases.push(rec);
  }
  const ref = {
    model: name, file: name + '.onnx', config: cfg, opset: 23,
    exporter: `make_opset23.mjs from ${srcNo}.onnx (same weights)`,
    runtime: `onnxruntime-node ${ort.env.versions?.node ?? '?'}, CPU execution provider, default session options`,
    format: orig.format, cases,
  };
  fs.writeFileSync(path.join(dir, name + '.ref.json'), JSON.stringify(ref));
  const row = { model: name, bytes: fs.statSync(file).size, worst_logit_vs_torchscript_ref: worstLogit, worst_present: worstPresent, greedy_mismatch: greedyMismatch, runs };
  report.push(row); console.log(JSON.stringify(row));
}
// merged into agreement.json beside make_refs.mjs's rows (here: ORT on this file vs the TorchScript file's reference)
const agreementPath = path.join(dir, 'agreement.json');
const all = new Map(fs.existsSync(agreementPath) ? JSON.parse(fs.readFileSync(agreementPath, 'utf8')).map(a => [a.model, a]) : []);
for (const r of report) {
  all.set(r.model, { model: r.model, file: r.model + '.onnx', compared_with: 'onnxruntime outputs of the TorchScript export (its .ref.json)', worst_logits: r.worst_logit_vs_torchscript_ref,
    worst_present: r.worst_present, runs: r.runs, argmax_mismatch: r.greedy_mismatch, argmax_checked: 'last position of every run', pass: r.worst_logit_vs_torchscript_ref < 1e-4 && r.greedy_mismatch === 0 });
}
fs.writeFileSync(agreementPath, JSON.stringify([...all.values()].sort((x, y) => x.model.localeCompare(y.model)), null, 1) + '\n');
if (!report.every(r => r.worst_logit_vs_torchscript_ref < 1e-4 && r.greedy_mismatch === 0)) { console.error('AGREEMENT FAILED'); process.exit(1); }
