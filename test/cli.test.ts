// The CLI as users call it: verbs, JSON output, and bad input as one clear line with exit code 2.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exportOnnx } from '../compiler/onnx/export.js';
import { attr, GraphBuilder } from '../ir/graph/builder.js';
import { fhec } from './helpers/cli.js';
import { MODELS, ORTGENAI, ROOT, readJson } from './helpers/shared.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-cli-'));
const A = path.join(MODELS, 'A_nocache_opset14.onnx');
const AKV = path.join(MODELS, 'A_kvcache_opset14.onnx');

function writeJson(name: string, value: unknown): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, JSON.stringify(value));
  return f;
}

/** A bad-input run: exit 2, one line on stderr, no stack trace, naming what it must name. */
function expectUserError(r: ReturnType<typeof fhec>, ...mentions: string[]) {
  expect(r.status, r.stderr).toBe(2);
  const lines = r.stderr.trim().split('\n');
  expect(lines.length, r.stderr).toBe(1);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  for (const m of mentions) expect(r.stderr).toContain(m);
}

describe('fhec CLI', () => {
  // The machine's own Node (older than node-seal 7 needs, on the machines this project targets):
  // started with it, the launcher re-runs itself with the project's pinned Node.
  const systemNode = (process.env.PATH ?? '')
    .split(path.delimiter)
    .filter((d) => d && !d.includes('node_modules'))
    .map((d) => path.join(d, 'node'))
    .find((f) => fs.existsSync(f));
  const oldNode = systemNode && Number(spawnSync(systemNode, ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' }).stdout) < 22;
  it.runIf(oldNode)('started by an older Node, bin/fhec.js re-runs itself with the pinned Node', () => {
    const r = spawnSync(systemNode!, [path.join(ROOT, 'bin', 'fhec.js'), 'eval', AKV, '--inputs', path.join(ROOT, 'models', 'llama-byte-a', 'prompt16.json')], { encoding: 'utf8', cwd: ROOT });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).outputs.logits.dims).toEqual([1, 16, 256]);
  });

  it('--help lists every verb', () => {
    const r = fhec('--help');
    expect(r.status).toBe(0);
    for (const verb of ['inspect', 'eval', 'ir']) expect(r.stdout).toMatch(new RegExp(`^\\s+${verb}\\b`, 'm'));
  });

  it('inspect --json reports inputs, outputs, ops, parameters and unsupported ops', () => {
    const r = fhec('inspect', AKV, '--json');
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.inputs.map((v: { name: string }) => v.name)).toEqual([
      'input_ids', 'attention_mask', 'position_ids',
      'past_key_values.0.key', 'past_key_values.0.value', 'past_key_values.1.key', 'past_key_values.1.value',
    ]);
    expect(j.inputs[0].shape).toEqual([1, 'sequence_length']);
    expect(j.outputs[0]).toMatchObject({ name: 'logits', dtype: 'float32' });
    expect(j.ops.MatMul).toBe(20);
    expect(j.ops.Softmax).toBe(2);
    expect(j.ops.Constant).toBe(191);
    expect(j.parameters.count).toBe(131392);
    expect(j.unsupported).toEqual([]);
  });

  it('inspect lists external data of the ortgenai model', () => {
    const j = JSON.parse(fhec('inspect', ORTGENAI.model, '--json').stdout);
    expect(j.externalData).toHaveLength(1);
    expect(j.externalData[0]).toMatchObject({ location: 'model.onnx.data', exists: true });
    expect(j.ops['com.microsoft::MultiHeadAttention']).toBe(2);
    expect(j.opsets['com.microsoft']).toBe(1);
  });

  it('eval accepts one step of a *.ref.json as it is and reproduces it', () => {
    const ref = readJson(path.join(MODELS, 'A_nocache_opset14.ref.json'));
    const step = ref.cases[0].steps[0];
    const inFile = writeJson('step.json', step);
    const outFile = path.join(tmp, 'out.json');
    const r = fhec('eval', A, '--inputs', inFile, '--out', outFile);
    expect(r.status, r.stderr).toBe(0);
    const out = readJson(outFile).outputs.logits;
    expect(out.dims).toEqual(step.outputs.logits.dims);
    let err = 0;
    out.data.forEach((v: number, i: number) => (err = Math.max(err, Math.abs(v - step.outputs.logits.data[i]))));
    expect(err).toBeLessThan(1e-4);
  });

  it('ir prints textual IR with bound dims', () => {
    const r = fhec('ir', A, '--bind', 'sequence_length=8');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('[1, 8, 256]');
    expect(r.stdout).toContain('MatMul');
  });

  describe('bad input: exit 2, one line naming the file and node or field', () => {
    it('not an ONNX file', () => {
      const f = path.join(tmp, 'notonnx.onnx');
      fs.writeFileSync(f, 'hello, this is not protobuf at all \x00\xff\xfe');
      expectUserError(fhec('inspect', f), f);
    });

    it('truncated ONNX file', () => {
      const f = path.join(tmp, 'truncated.onnx');
      fs.writeFileSync(f, fs.readFileSync(A).subarray(0, 200_000));
      expectUserError(fhec('inspect', f), f);
    });

    it('missing file', () => {
      expectUserError(fhec('inspect', path.join(tmp, 'nope.onnx')), 'nope.onnx', 'not found');
    });

    it('external data missing', () => {
      const dir = path.join(tmp, 'ext');
      fs.mkdirSync(dir, { recursive: true });
      fs.copyFileSync(ORTGENAI.model, path.join(dir, 'model.onnx'));
      const ref = readJson(ORTGENAI.ref);
      const inFile = writeJson('genai-in.json', { inputs: ref.inputs });
      expectUserError(fhec('eval', path.join(dir, 'model.onnx'), '--inputs', inFile), 'model.onnx.data');
    });

    it('malformed tensor JSON, missing and extra inputs, wrong dims and dtypes', () => {
      const good = readJson(path.join(MODELS, 'A_nocache_opset14.ref.json')).cases[0].steps[0].inputs;
      const bad = path.join(tmp, 'bad.json');
      fs.writeFileSync(bad, '{"inputs": {');
      expectUserError(fhec('eval', A, '--inputs', bad), bad, 'malformed JSON');
      expectUserError(fhec('eval', A, '--inputs', writeJson('missing.json', { inputs: {} })), "missing input(s) 'input_ids'");
      expectUserError(
        fhec('eval', A, '--inputs', writeJson('extra.json', { inputs: { ...good, foo: good.input_ids } })),
        "unknown input(s) 'foo'",
      );
      expectUserError(
        fhec('eval', A, '--inputs', writeJson('dtype.json', { inputs: { input_ids: { ...good.input_ids, dtype: 'float32' } } })),
        'inputs.input_ids', 'int64',
      );
      expectUserError(
        fhec('eval', A, '--inputs', writeJson('rank.json', { inputs: { input_ids: { dims: [16], dtype: 'int64', data: good.input_ids.data } } })),
        'inputs.input_ids', 'rank',
      );
      expectUserError(
        fhec('eval', A, '--inputs', writeJson('count.json', { inputs: { input_ids: { dims: [1, 5], dtype: 'int64', data: [1, 2] } } })),
        'inputs.input_ids', 'need 5',
      );
    });

    it('unsupported ops: inspect lists every one with its nodes, eval refuses naming all of them', () => {
      const b = new GraphBuilder('g', { '': 17, 'com.example': 1 });
      const x = b.input('x', 'float32', [2, 2]);
      const e1 = b.op1('Einsum', [x, x], 'float32', [2, 2], { equation: attr.string('ij,jk->ik') }, { name: 'einsum_a' });
      const e2 = b.op1('Einsum', [e1, x], 'float32', [2, 2], { equation: attr.string('ij,jk->ik') }, { name: 'einsum_b' });
      const f = b.op1('Frobnicate', [e2], 'float32', [2, 2], {}, { domain: 'com.example', name: 'frob' });
      b.output(b.op1('Relu', [f], 'float32', [2, 2]));
      const file = path.join(tmp, 'unsupported.onnx');
      exportOnnx(b.graph, file);
      const r = fhec('inspect', file, '--json');
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).unsupported).toEqual([
        { op: 'Einsum', domain: 'ai.onnx', nodes: ['einsum_a', 'einsum_b'] },
        { op: 'Frobnicate', domain: 'com.example', nodes: ['frob'] },
      ]);
      const inFile = writeJson('unsup-in.json', { inputs: { x: { dims: [2, 2], dtype: 'float32', data: [1, 2, 3, 4] } } });
      expectUserError(fhec('eval', file, '--inputs', inFile), file, 'ai.onnx::Einsum (einsum_a, einsum_b)', 'com.example::Frobnicate (frob)');
    });

    it('a bad --bind names the dims the model has', () => {
      expectUserError(fhec('ir', A, '--bind', 'seq=4'), "'seq'", 'sequence_length');
    });
  });
});
