// `fhec compile --emit ts` for model and step plans (compiler/emit/plan-module.ts): the emitted module
// of a small plan is pinned as text, type-checks under strict settings, and run through PlanRuntime on
// the simulator gives bit for bit what executeProgram gives; a module of another plan, or one that
// drifts from its plan, is refused with a clear error.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { emitPlanModule } from '../compiler/emit/plan-module.js';
import { loadEmittedModule, writePlanModule } from '../compiler/emit/load-module.js';
import { FhecError } from '../ir/errors.js';
import { FheBuilder, type SlotLayout } from '../ir/fhe/index.js';
import { fheChain, selectParameters } from '../ir/ckks/params.js';
import { manageScales } from '../passes/fhe/manage/manage-scales.js';
import { encryptInputs, executeProgram, keyRequestFor } from '../runtime/ckks/execute.js';
import { runEmittedPlan, type EmittedPlanModule, type PlanRuntime } from '../runtime/ckks/program-runtime.js';
import { loadPlan, writePlan } from '../runtime/plan/plan.js';
import { makeSimBackend } from '../runtime/sim/backend.js';
import { typeCheck } from './helpers/type-check.js';
import { ROOT } from './helpers/shared.js';

const GOLDEN = path.join(ROOT, 'test/golden/ts/plan-module.ts.golden');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhec-plan-module-'));

/** A two-kernel plan (a linear layer with a sidecar weight, then a square), with its analysis section. */
function smallPlan(name: string, weight = 0.5, step = 1): string {
  const params = selectParameters({ depth: 2 });
  const slots = params.ringDegree / 2;
  const L: SlotLayout = { length: slots, tokens: 1, stride: slots, period: slots, copies: 1 };
  const b = new FheBuilder('small', slots);
  const x = b.input('x', L);
  const w = Float64Array.from({ length: 20 }, (_, i) => (i - 10) * weight / 8);
  const y = b.add(b.mulConst(x, { kind: 'dense', values: w }, 'w'), b.rotate(x, step));
  const z = b.addConst(b.mul(y, y), { kind: 'splat', value: 0.25 }, 'shift');
  b.output('z', z, L);
  const program = manageScales(b.build(), { chain: fheChain(params), topScale: params.scale });
  const file = path.join(dir, `${name}.json`);
  writePlan(file, program, params);
  // Kernel of each op: input, then the linear's ops up to the add, then the square's, then the output.
  const ops = program.ops;
  const addAt = ops.findIndex((op) => op.kind === 'add');
  const runs = [-1, 1, 0, addAt, 1, ops.length - 2 - addAt, -1, 1];
  const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  doc.analysis = {
    kind: 'fhec-plan-analysis',
    kernels: [
      { name: '/model/layers.0/proj/MatMul:linear', op: 'linear', layer: 'layer 0', depth: 1, approximations: [] },
      { name: '/model/layers.0/Mul:square', op: 'square', layer: 'layer 0', depth: 2, approximations: [] },
    ],
    opKernels: runs,
    refreshes: { placement: 'none', greedyKernels: [] },
  };
  fs.writeFileSync(file, JSON.stringify(doc));
  return file;
}

async function runBoth(file: string, module: EmittedPlanModule) {
  const plan = loadPlan(file);
  const results = [];
  for (const emitted of [false, true]) {
    const backend = makeSimBackend(42);
    const client = await backend.createClient(plan.params, keyRequestFor(plan.program));
    const ev = await backend.createEvaluator(plan.params, client.evaluationKeys());
    const inputs = encryptInputs(plan.program, client, { x: Float64Array.from({ length: plan.program.slots }, (_, i) => Math.sin(i) / 2) });
    const r = emitted ? runEmittedPlan(module, plan, file, ev, inputs) : executeProgram(plan.program, ev, inputs);
    results.push(r);
    ev.dispose();
    client.dispose();
  }
  return results;
}

describe('TypeScript emission of model and step plans', () => {
  it('pins the emitted text of a small plan (UPDATE_GOLDEN=1 regenerates)', () => {
    const text = emitPlanModule(smallPlan('golden'));
    if (process.env.UPDATE_GOLDEN) fs.writeFileSync(GOLDEN, text);
    expect(text).toBe(fs.readFileSync(GOLDEN, 'utf8'));
    // Values and functions are named after the canonical ops.
    expect(text).toMatch(/function layers_0_proj_MatMul_linear\(rt: PlanRuntime, x: Ct\): Ct/);
    expect(text).toMatch(/const square_\d+ = rt\.mul\(square_\d+, square_\d+\);/);
  });

  it('type-checks under strict settings', () => {
    const file = writePlanModule(smallPlan('checked'));
    expect(typeCheck([file]).get(file)).toEqual([]);
  });

  it('runs bit for bit like executeProgram on the simulator, ops and outputs alike', async () => {
    const file = smallPlan('run');
    const [json, emitted] = await runBoth(file, loadEmittedModule(writePlanModule(file)));
    expect([...emitted!.ops.keys()].sort()).toEqual([...json!.ops.keys()].sort());
    for (const [k, s] of json!.ops) expect(emitted!.ops.get(k)!.count).toBe(s.count);
    expect([...emitted!.outputs.keys()]).toEqual(['z']);
    expect(Buffer.compare(Buffer.from(emitted!.outputs.get('z')!), Buffer.from(json!.outputs.get('z')!))).toBe(0);
  });

  it('refuses a module emitted from another plan, and code that drifts from its plan', async () => {
    const file = smallPlan('mine');
    const otherProgram = loadEmittedModule(writePlanModule(smallPlan('other-program', 0.5, 2)));
    await expect(runBoth(file, otherProgram)).rejects.toThrow(/generated from another program than this plan holds/);
    const otherWeights = loadEmittedModule(writePlanModule(smallPlan('other-weights', 0.75)));
    await expect(runBoth(file, otherWeights)).rejects.toThrow(/generated for other weights than this plan's/);
    const mine = loadEmittedModule(writePlanModule(file));
    // Same digests, but the code skips the linear layer's rotation.
    const drifting: EmittedPlanModule = {
      PLAN: mine.PLAN,
      run: (rt: PlanRuntime) => {
        const x = rt.input('x');
        rt.add(x, x);
      },
    };
    await expect(runBoth(file, drifting)).rejects.toThrow(FhecError);
    await expect(runBoth(file, drifting)).rejects.toThrow(/out of step with the program at op 1/);
  });

  it('refuses a file that is not an emitted module, naming it', () => {
    const bad = path.join(dir, 'bad.ts');
    fs.writeFileSync(bad, 'export const x = 1;\n');
    expect(() => loadEmittedModule(bad)).toThrow(/not a module emitted for a plan/);
    expect(() => loadEmittedModule(path.join(dir, 'missing.ts'))).toThrow(/cannot read the emitted module/);
  });
});
