// `fhec compile` and `fhec run` end to end, as users call them (the CLI runs from dist/, built by
// `tsc -p tsconfig.json`): ONNX node tests compiled, run encrypted on SEAL within the acceptance tolerance,
// the same plan simulated (close results, labelled as simulation); bad input exits 2 with one clear line.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readTensorProtoFile } from '../compiler/onnx/tensor-proto.js';
import { parseFhe } from '../ir/fhe/parse.js';
import { tensorsFromJson, tensorsToJson } from '../ir/tensor-json.js';
import type { Tensor } from '../ir/tensor.js';
import { fhec, type CliResult } from './helpers/cli.js';
import { NODE_TESTS } from './helpers/shared.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-cli-fhe-'));

function expectUserError(r: CliResult, ...mentions: (string | RegExp)[]) {
  expect(r.status, r.stderr).toBe(2);
  expect(r.stderr.trim().split('\n').length, r.stderr).toBe(1);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  for (const m of mentions) expect(r.stderr).toMatch(m);
}

/** Writes the node test's inputs as tensor JSON; returns the file and the expected outputs. */
function nodeTest(name: string): { model: string; inputs: string; expected: Record<string, Tensor>; given: Record<string, Tensor> } {
  const dir = path.join(NODE_TESTS, name);
  const data = path.join(dir, 'test_data_set_0');
  const given: Record<string, Tensor> = {};
  const expected: Record<string, Tensor> = {};
  for (const f of fs.readdirSync(data).sort()) {
    const { name: n, tensor } = readTensorProtoFile(path.join(data, f));
    (f.startsWith('input_') ? given : expected)[n] = tensor;
  }
  const inputs = path.join(tmp, `${name}.in.json`);
  fs.writeFileSync(inputs, JSON.stringify(tensorsToJson(given, 'inputs')));
  return { model: path.join(dir, 'model.onnx'), inputs, expected, given };
}

function readOutputs(file: string): { label: string; outputs: Record<string, Tensor> } {
  const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  return { label: doc.label, outputs: tensorsFromJson(doc, 'outputs', file) };
}

describe('fhec compile / fhec run', () => {
  const E2E = ['test_gemm_all_attributes', 'test_matmul_bcast', 'test_add_bcast', 'test_neg_example'];
  const plans = new Map<string, string>();

  beforeAll(() => {
    for (const name of E2E) {
      const plan = path.join(tmp, `${name}.json`);
      const r = fhec('compile', nodeTest(name).model, '-o', plan);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^parameters: N=8192 /m);
      expect(r.stdout).toMatch(/^security: 128-bit/m);
      expect(r.stdout).toMatch(/^keys: \d+ Galois key\(s\).*MiB/m);
      expect(r.stdout).toMatch(/^ops: \d+ rotations, \d+ ct x ct multiplications.*; depth \d+$/m);
      plans.set(name, plan);
    }
  });

  for (const name of E2E) {
    it(`${name}: encrypted on seal within 1e-3 + 1e-3|expected|, and sim close to it`, () => {
      const t = nodeTest(name);
      const plan = plans.get(name)!;
      const outSeal = path.join(tmp, `${name}.seal.json`);
      const seal = fhec('run', plan, '--inputs', t.inputs, '--out', outSeal, '--backend', 'seal');
      expect(seal.status, seal.stderr).toBe(0);
      expect(seal.stdout).toMatch(/^encrypted with SEAL/m);
      expect(seal.stdout).not.toMatch(/SIMULATION/);
      const s = readOutputs(outSeal);
      expect(s.label).toMatch(/^encrypted with SEAL/);
      for (const [out, want] of Object.entries(t.expected)) {
        const got = s.outputs[out]!;
        expect(got.dims).toEqual(want.dims);
        want.data.forEach((e, i) => expect(Math.abs(got.data[i]! - e)).toBeLessThanOrEqual(1e-3 + 1e-3 * Math.abs(e)));
      }
      const outSim = path.join(tmp, `${name}.sim.json`);
      const sim = fhec('run', plan, '--inputs', t.inputs, '--out', outSim, '--backend', 'sim');
      expect(sim.status, sim.stderr).toBe(0);
      expect(sim.stdout).toMatch(/^SIMULATION \(nothing encrypted\)/m);
      const m = readOutputs(outSim);
      expect(m.label).toMatch(/^SIMULATION \(nothing encrypted\)/);
      for (const [out, x] of Object.entries(s.outputs)) {
        x.data.forEach((v, i) => expect(Math.abs(m.outputs[out]!.data[i]! - v)).toBeLessThan(1e-4));
      }
    });
  }

  it('seal is the default backend; without --out the JSON goes to stdout and the label to stderr', () => {
    const t = nodeTest('test_neg_example');
    const r = fhec('run', plans.get('test_neg_example')!, '--inputs', t.inputs);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^encrypted with SEAL/m);
    const doc = JSON.parse(r.stdout);
    expect(doc.backend).toBe('seal');
    expect(doc.outputs.y.data).toEqual(Array.from(t.expected.y!.data));
  });

  it('--print-fhe and --emit-fhe-ir give the program stored in the plan', () => {
    const ir = path.join(tmp, 'mm.fhe');
    const r = fhec('compile', nodeTest('test_matmul_2d').model, '-o', path.join(tmp, 'mm.json'), '--print-fhe', '--emit-fhe-ir', ir);
    expect(r.status, r.stderr).toBe(0);
    const text = fs.readFileSync(ir, 'utf8');
    expect(r.stdout).toContain(text);
    const p = parseFhe(text);
    expect(p.ops.filter((op) => op.kind === 'mul')).toHaveLength(1);
    expect(p.ops.filter((op) => op.kind === 'input').map((op) => op.tensor)).toEqual(['a', 'b']);
  });

  it('--emit ts writes a typed TypeScript module of the plan (into a folder it creates)', () => {
    const plan = path.join(tmp, 'emit', 'nested', 'plan.json');
    const r = fhec('compile', path.join(NODE_TESTS, 'test_gemm_default_no_bias', 'model.onnx'), '-o', plan, '--emit', 'ts');
    expect(r.status, r.stderr).toBe(0);
    const text = fs.readFileSync(plan.replace(/\.json$/, '.ts'), 'utf8');
    // The module model plans get: types from the runtime, one PlanRuntime call per op, the plan's digest.
    expect(text).toContain("import type { Ct, PlanRuntime } from 'fhec/runtime'");
    expect(text).toMatch(/export function run\(rt: PlanRuntime\): void/);
    const doc = JSON.parse(fs.readFileSync(plan, 'utf8'));
    expect(text).toContain(`programSha256: '${createHash('sha256').update(doc.program).digest('hex')}'`);
    // A comment naming each value-defining op, and one per output; one runtime call per op.
    const program = parseFhe(doc.program);
    const outputs = program.ops.filter((o) => o.kind === 'output').length;
    expect(text.match(/^\s*\/\/ %/gm)?.length).toBe(program.ops.length - outputs);
    expect(text.match(/^\s*\/\/ output "/gm)?.length).toBe(outputs);
    expect(text.match(/\brt\.\w+\(/g)?.length).toBe(program.ops.length);
    const bad = fhec('compile', path.join(NODE_TESTS, 'test_gemm_default_no_bias', 'model.onnx'), '-o', plan, '--emit', 'py');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("--emit supports 'ts'");
  });

  it('integer tests and unsupported ops are refused at compile time', () => {
    expectUserError(fhec('compile', nodeTest('test_add_int16').model, '-o', path.join(tmp, 'x.json')), /'x' is int16/, /only float32 tensors can be encrypted/);
    expectUserError(fhec('compile', nodeTest('test_div').model, '-o', path.join(tmp, 'x.json')), /not supported under encryption: Div \(/);
  });

  it('a plan with a wrong schema, or without its interface, exits 2 with one line', () => {
    const doc = JSON.parse(fs.readFileSync(plans.get('test_add_bcast')!, 'utf8'));
    const t = nodeTest('test_add_bcast');
    const noKeys = path.join(tmp, 'nokeys.json');
    fs.writeFileSync(noKeys, JSON.stringify({ ...doc, keys: undefined }));
    expectUserError(fhec('run', noKeys, '--inputs', t.inputs, '--backend', 'sim'), /malformed plan: keys/);
    const noIface = path.join(tmp, 'noiface.json');
    fs.writeFileSync(noIface, JSON.stringify({ ...doc, interface: undefined }));
    expectUserError(fhec('run', noIface, '--inputs', t.inputs, '--backend', 'sim'), /no tensor interface/);
  });

  it('insecure parameters: loud at compile time, refused at run time without --insecure', () => {
    const plan = path.join(tmp, 'insecure.json');
    const t = nodeTest('test_sub_example');
    const c = fhec('compile', t.model, '-o', plan, '--insecure');
    expect(c.status, c.stderr).toBe(0);
    expect(c.stderr).toMatch(/\*\*\* INSECURE PARAMETERS/);
    expect(c.stdout).toMatch(/^security: INSECURE/m);
    expect(JSON.parse(fs.readFileSync(plan, 'utf8')).params.insecure).toBe(true);
    expectUserError(fhec('run', plan, '--inputs', t.inputs, '--backend', 'sim'), /below 128-bit security; pass --insecure/);
    const ok = fhec('run', plan, '--inputs', t.inputs, '--backend', 'sim', '--insecure', '--out', path.join(tmp, 'ins.out.json'));
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/INSECURE PARAMETERS/);
  });

  it('inputs with wrong names or dims exit 2 naming the input', () => {
    const plan = plans.get('test_gemm_all_attributes')!;
    const t = nodeTest('test_gemm_all_attributes');
    const renamed = path.join(tmp, 'renamed.in.json');
    fs.writeFileSync(renamed, JSON.stringify(tensorsToJson({ a: t.given.a!, b: t.given.b!, z: t.given.c! }, 'inputs')));
    expectUserError(fhec('run', plan, '--inputs', renamed, '--backend', 'sim'), /missing input\(s\) 'c'; unknown input\(s\) 'z'/);
    const wrongDims = path.join(tmp, 'dims.in.json');
    fs.writeFileSync(wrongDims, JSON.stringify(tensorsToJson({ a: t.given.b!, b: t.given.b!, c: t.given.c! }, 'inputs')));
    expectUserError(fhec('run', plan, '--inputs', wrongDims, '--backend', 'sim'), /inputs\.a: dims \[5, 4\] do not match the plan's \[4, 3\]/);
    expectUserError(fhec('run', plan, '--inputs', t.inputs, '--backend', 'gpu'), /unknown backend 'gpu'/);
  });
});
