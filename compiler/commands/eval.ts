// `fhec eval MODEL.onnx --inputs IN.json [--out OUT.json] [--bind name=value ...]`:
// runs the float64 reference interpreter (the oracle every compiler pass is checked against).

import { checkOutputs, modelFiles } from './outputs.js';
import { writeFileAtomic } from '../../runtime/plan/files.js';
import type { Command } from 'commander';
import { FhecError } from '../../ir/errors.js';
import type { Graph } from '../../ir/graph/types.js';
import { tensorsFromJson, tensorsToJson } from '../../ir/tensor-json.js';
import type { Tensor } from '../../ir/tensor.js';
import { runGraph } from '../../runtime/reference/interpreter.js';
import { loadModel, type LoadOptions } from '../driver.js';
import { bindingsFromInputs } from '../model-inputs.js';
import { collectBinding, readJsonFile } from './common.js';
import { unsupportedOps } from './inspect.js';

/** Refuse a graph with ops the interpreter lacks, naming every one of them. */
export function rejectUnsupported(graph: Graph, file: string): void {
  const bad = unsupportedOps(graph);
  if (bad.length === 0) return;
  const list = bad.map((u) => `${u.domain}::${u.op} (${u.nodes.slice(0, 3).join(', ')}${u.nodes.length > 3 ? ', ...' : ''})`);
  throw new FhecError(`unsupported op(s): ${list.join('; ')}`, { file });
}

export interface EvalOptions extends Omit<LoadOptions, 'bindings'> {
  bindings?: Record<string, number>;
}

/** Evaluate a model on named inputs; `inputsFile` names the tensor source in errors. */
export function evalModel(
  model: string,
  inputs: Record<string, Tensor>,
  opts: EvalOptions & { inputsFile?: string } = {},
): Record<string, Tensor> {
  const loaded = loadModel(model, {
    ...opts,
    check: (g) => rejectUnsupported(g, model),
    bindings: (g) => bindingsFromInputs(g, inputs, opts.inputsFile ?? 'inputs', opts.bindings),
  });
  return runGraph(loaded.graph, inputs);
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('evaluate a model with the float64 reference interpreter')
    .argument('<model>', 'ONNX model file')
    .requiredOption('--inputs <file>', 'tensor JSON: {"inputs": {NAME: {dims, dtype, data}}}')
    .option('--out <file>', 'write {"outputs": {...}} here (default: stdout)')
    .option('--bind <name=value>', 'bind a symbolic dim (repeatable)', collectBinding, {})
    .option('--canonical', 'evaluate the canonical transformer IR (raised for the inputs\' shapes)')
    .action((model: string, opts: { inputs: string; out?: string; bind: Record<string, number>; canonical?: boolean }) => {
      if (opts.out) checkOutputs([{ path: opts.out, flag: '--out' }], [...modelFiles(model), opts.inputs]);
      const inputs = tensorsFromJson(readJsonFile(opts.inputs), 'inputs', opts.inputs);
      const outputs = evalModel(model, inputs, { bindings: opts.bind, inputsFile: opts.inputs, canonical: opts.canonical });
      const text = JSON.stringify(tensorsToJson(outputs, 'outputs'));
      if (opts.out) {
        writeFileAtomic(opts.out, text);
        for (const [name, t] of Object.entries(outputs)) console.log(`${name}: ${t.dtype} [${t.dims.join(', ')}]`);
      } else {
        console.log(text);
      }
    });
}
