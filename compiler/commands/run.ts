// `fhec run PLAN.json --inputs IN.json [--out OUT.json] [--backend seal|sim] [--insecure]`:
// encrypts the inputs, evaluates the plan on encrypted data (or simulates it), decrypts the outputs.

import * as fs from 'node:fs';
import type { Command } from 'commander';
import { tensorsFromJson, tensorsToJson } from '../../ir/tensor-json.js';
import { backendByName, runFhePlanFile } from '../fhe-run.js';
import { readJsonFile } from './common.js';
import { isModelPlanFile, runModelCommand } from '../model-commands.js';
import { RefreshAudit } from '../../runtime/refresh/audit.js';

interface RunFlags {
  inputs: string;
  out?: string;
  backend: string;
  insecure?: boolean;
  auditRefresh?: string;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(3)} s`;
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run a compiled plan: encrypt the inputs, evaluate under encryption (seal) or simulate (sim), decrypt')
    .argument('<plan>', 'plan file written by `fhec compile`')
    .requiredOption('--inputs <file>', 'tensor JSON: {"inputs": {NAME: {dims, dtype, data}}}')
    .option('--out <file>', 'write {"label", "outputs": {...}} here (default: stdout)')
    .option('--backend <name>', 'seal (real encryption) or sim (CKKS simulation, nothing encrypted)', 'seal')
    .option('--insecure', 'allow running a plan whose parameters are below 128-bit security')
    .option('--audit-refresh <file>', 'write one JSON line per refreshed ciphertext: refresh point, bound, observed max |x| (sim only), hiding bits')
    .action(async (plan: string, opts: RunFlags) => {
      const backend = backendByName(opts.backend);
      const inputs = tensorsFromJson(readJsonFile(opts.inputs), 'inputs', opts.inputs);
      const audit = opts.auditRefresh !== undefined ? new RefreshAudit(opts.auditRefresh) : undefined;
      if (isModelPlanFile(plan)) {
        // A canonical model's plan: the client embeds the tokens, logits come back by the model's names.
        const m = await runModelCommand(plan, inputs, backend, audit);
        audit?.close();
        if (audit) m.lines.push(audit.summary());
        for (const l of m.lines) (opts.out ? console.log : (s: string) => process.stderr.write(`${s}\n`))(l);
        if (opts.out) fs.writeFileSync(opts.out, m.json);
        else console.log(m.json);
        return;
      }
      const r = await runFhePlanFile(plan, inputs, { backend, insecure: opts.insecure, ...(audit ? { audit } : {}) }, opts.inputs);
      audit?.close();
      if (audit) process.stderr.write(`${audit.summary()}\n`);
      // The label goes where the user looks: stdout with --out, stderr when stdout carries the JSON.
      const say = opts.out ? (s: string) => console.log(s) : (s: string) => process.stderr.write(`${s}\n`);
      if (r.warning) process.stderr.write(`${r.warning}\n`);
      say(r.label);
      const doc = { label: r.label, backend: backend.name, ...tensorsToJson(r.outputs, 'outputs') };
      const text = JSON.stringify(doc);
      const t = r.timings;
      const ops = [...r.ops.values()].reduce((n, s) => n + s.count, 0);
      say(`keys ${seconds(t.keysMs)}, encrypt ${seconds(t.encryptMs)}, evaluate ${seconds(t.evaluateMs)} (${ops} ops), decrypt ${seconds(t.decryptMs)}`);
      if (opts.out) {
        fs.writeFileSync(opts.out, text);
        for (const [name, x] of Object.entries(r.outputs)) console.log(`${name}: ${x.dtype} [${x.dims.join(', ')}]`);
      } else {
        console.log(text);
      }
    });
}
