// `fhec ir MODEL.onnx [--bind ...]`: the textual graph IR after import and specialization.

import type { Command } from 'commander';
import { printGraph } from '../../ir/text/print.js';
import { formatPassRuns } from '../../passes/pass-manager.js';
import { generatorBindings, generatorShapeFromFlags } from '../../passes/canonical/specialize.js';
import { loadModel } from '../driver.js';
import { collectBinding, collectList } from './common.js';

export function registerIr(program: Command): void {
  program
    .command('ir')
    .description('print the graph IR after import, specialization and folding')
    .argument('<model>', 'ONNX model file')
    .option('--bind <name=value>', 'bind a symbolic dim (repeatable)', collectBinding, {})
    .option('--pipeline <passes>', 'passes to run after import, e.g. "infer-shapes,fold-constants,dce"')
    .option('--print-after <pass>', 'print the IR after this pass (repeatable)', collectList, [])
    .option('--print-after-all', 'print the IR after every pass')
    .option('--timing', 'print per-pass timing to stderr')
    .option('--canonical', 'raise to the canonical transformer IR (default shape: --prefill 16)')
    .option('--prefill <S>', 'specialize for a prompt of S tokens, no past')
    .option('--decode <P>', 'specialize for one new token after P cached ones')
    .action((model: string, opts: { bind: Record<string, number>; pipeline?: string; printAfter: string[]; printAfterAll?: boolean; timing?: boolean; canonical?: boolean; prefill?: string; decode?: string }) => {
      const shape = generatorShapeFromFlags(opts.prefill, opts.decode) ?? (opts.canonical && !Object.keys(opts.bind).length ? { kind: 'prefill' as const, sequence: 16 } : undefined);
      const loaded = loadModel(model, {
        bindings: (g) => ({ ...(shape ? generatorBindings(g, shape) : {}), ...opts.bind }),
        canonical: opts.canonical,
        pipeline: opts.pipeline,
        printAfter: opts.printAfterAll ? 'all' : new Set(opts.printAfter),
      });
      if (opts.timing) process.stderr.write(`${formatPassRuns(loaded.passRuns)}\n`);
      process.stdout.write(printGraph(loaded.graph));
    });
}
