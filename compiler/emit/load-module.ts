// Loading the modules `fhec compile --emit ts` writes beside model and step plans, for `fhec generate
// --emitted`. An emitted module imports only types, so it is transpiled (TypeScript's transpileModule,
// types erased) to a CommonJS function body and run synchronously in this process: the evaluator runs a
// step as soon as its request arrives. A step plan without a module (decode plans are compiled on first
// use) gets one emitted the same way, before it runs.

import * as fs from 'node:fs';
import * as vm from 'node:vm';
import { ts } from 'ts-morph';
import { FhecError } from '../../ir/errors.js';
import type { EmittedPlanModule } from '../../runtime/ckks/program-runtime.js';
import { readCheckedFile, writeFileAtomic } from '../../runtime/plan/files.js';
import { emitPlanModule } from './plan-module.js';

/** The module file emitted for a plan file: PLAN.json -> PLAN.ts. */
function moduleFileOf(planFile: string): string {
  return planFile.replace(/\.json$/, '') + '.ts';
}

/** Emits the module of a plan file beside it; returns its path. */
export function writePlanModule(planFile: string): string {
  const file = moduleFileOf(planFile);
  writeFileAtomic(file, emitPlanModule(planFile));
  return file;
}

/** Transpiles and runs an emitted module file; checks it exports PLAN and run. */
export function loadEmittedModule(file: string): EmittedPlanModule {
  const source = new TextDecoder().decode(readCheckedFile(file, 'the emitted module'));
  const out = ts.transpileModule(source, {
    fileName: file,
    reportDiagnostics: true,
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
  });
  const syntax = out.diagnostics?.[0];
  if (syntax) throw new FhecError(`the emitted module does not parse: ${ts.flattenDiagnosticMessageText(syntax.messageText, ' ')}`, { file });
  const exports: Record<string, unknown> = {};
  try {
    vm.compileFunction(out.outputText, ['exports'], { filename: file })(exports);
  } catch (e) {
    throw new FhecError(`the emitted module failed to load: ${(e as Error).message}`, { file });
  }
  const plan = exports['PLAN'] as EmittedPlanModule['PLAN'] | undefined;
  if (typeof exports['run'] !== 'function' || !plan || typeof plan.programSha256 !== 'string' || typeof plan.file !== 'string') {
    throw new FhecError('not a module emitted for a plan (it must export PLAN with the plan\'s digests and run(rt))', { file });
  }
  return exports as unknown as EmittedPlanModule;
}

/** The emitted modules of a generation's step plans, loaded (and emitted when missing) on first use. */
export class EmittedModules {
  private readonly loaded = new Map<string, EmittedPlanModule>();
  /** Modules this run had to emit (their plans were compiled after `--emit ts`). */
  readonly emitted: string[] = [];

  forPlan(planFile: string): EmittedPlanModule {
    const file = moduleFileOf(planFile);
    let m = this.loaded.get(file);
    if (!m) {
      if (!fs.existsSync(file)) this.emitted.push(writePlanModule(planFile));
      m = loadEmittedModule(file);
      this.loaded.set(file, m);
    }
    return m;
  }
}
