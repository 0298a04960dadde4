// `fhec accuracy MODEL PLAN --text FILE [--windows N] [--skip K] [--backend seal|sim] [--json OUT]`:
// teacher-forced next-token agreement of a compiled model plan with the plaintext model. Windows of
// the text (the plan's length; P+1 tokens for a decode plan) run through the plan, encrypted on seal;
// at every position the greedy token of the decrypted logits is compared with the float64 reference's.

import * as fs from 'node:fs';
import type { Command } from 'commander';
import { FhecError } from '../../ir/errors.js';
import { loadModelPlan } from '../../runtime/model-session.js';
import { formatAccuracy, measureAccuracy, measureDecodeAccuracy } from '../accuracy.js';
import { backendByName, backendLabel } from '../fhe-run.js';
import { isModelPlanFile } from '../model-commands.js';
import { defaultWorkers, intOption, maskFromFlags, MIN_HIDING_BITS_HELP, minHidingBitsOption, WORKERS_HELP, workersOption } from './common.js';
import { checkOutputs, modelFiles, planFiles } from './outputs.js';
import { writeFileAtomic } from '../../runtime/plan/files.js';
import { RefreshAudit } from '../../runtime/refresh/audit.js';

interface AccuracyFlags {
  text: string;
  windows: number;
  skip: number;
  backend: string;
  json?: string;
  auditRefresh?: string;
  minHidingBits?: number;
  tokenizer?: string;
  workers?: number;
}

function positiveInt(name: string, v: number, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new FhecError(`${name} must be an integer >= ${min}, got ${v}`, { field: name });
  return v;
}

export function registerAccuracy(program: Command): void {
  program
    .command('accuracy')
    .description('teacher-forced next-token agreement of a model plan with the plaintext model on windows of a text, encrypted (seal) or simulated (sim)')
    .argument('<model>', 'the ONNX model the plan was compiled from (the plaintext reference)')
    .argument('<plan>', 'model plan written by `fhec compile MODEL --calibration FILE [--prefill S | --decode P]`')
    .requiredOption('--text <file>', 'text file (tokenized by --tokenizer, or as UTF-8 bytes); use held-out text, not the calibration file')
    .option('--tokenizer <dir>', 'the model\'s Hugging Face tokenizer folder (tokenizer.json, tokenizer_config.json) for text; default: UTF-8 bytes (256-token vocabularies)')
    .option('--windows <n>', 'windows to run', intOption('--windows', 1), 4)
    .option('--skip <k>', 'windows to skip first', intOption('--skip', 0), 0)
    .option('--backend <name>', 'seal (real encryption) or sim (CKKS simulation, nothing encrypted)', 'seal')
    .option('--json <file>', 'also write the figures as JSON')
    .option('--min-hiding-bits <bits>', MIN_HIDING_BITS_HELP, minHidingBitsOption())
    .option('--workers <n>', WORKERS_HELP, workersOption())
    .option('--audit-refresh <file>', 'write one JSON line per refreshed ciphertext: window (run), refresh point, bound, observed max |x| (sim only), hiding bits')
    .action(async (model: string, planFile: string, opts: AccuracyFlags) => {
      const backend = backendByName(opts.backend);
      positiveInt('--windows', opts.windows, 1);
      positiveInt('--skip', opts.skip, 0);
      if (!fs.existsSync(model)) throw new FhecError('model file not found', { file: model });
      if (!fs.existsSync(opts.text)) throw new FhecError('text file not found', { file: opts.text });
      const outs = [...(opts.json ? [{ path: opts.json, flag: '--json' }] : []), ...(opts.auditRefresh ? [{ path: opts.auditRefresh, flag: '--audit-refresh' }] : [])];
      if (outs.length) checkOutputs(outs, [...modelFiles(model), ...planFiles(planFile), opts.text]);
      if (!isModelPlanFile(planFile)) throw new FhecError('not a model plan (compile with --calibration and --prefill or --decode)', { file: planFile });
      const plan = loadModelPlan(planFile);
      process.stderr.write(`${backendLabel(backend)}\n`);
      const measure = 'decode' in plan.meta.mode ? measureDecodeAccuracy : measureAccuracy;
      const audit = opts.auditRefresh !== undefined ? new RefreshAudit(opts.auditRefresh) : undefined;
      const fig = await measure(model, plan, backend, opts.text, {
        ...(audit ? { audit } : {}),
        ...maskFromFlags(opts.minHidingBits),
        workers: opts.workers ?? defaultWorkers(),
        windows: opts.windows,
        skip: opts.skip,
        ...(opts.tokenizer !== undefined ? { tokenizer: opts.tokenizer } : {}),
        onWindow: (_f, i, agree, n) => process.stderr.write(`window ${i + 1}/${opts.windows}: ${agree}/${n} positions agree\n`),
      });
      if (fig.windows === 0) throw new FhecError(`the text has no full window of the plan's length after skipping ${opts.skip}`, { file: opts.text });
      console.log(formatAccuracy(fig));
      audit?.close();
      if (audit) process.stderr.write(`${audit.summary()}\n`);
      if (opts.json) writeFileAtomic(opts.json, JSON.stringify({ backend: backend.name, encrypted: !backend.simulated, ...fig, warnings: fig.warnings.map((w) => w.message) }, null, 1));
    });
}
