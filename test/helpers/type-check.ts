// Type-checks emitted TypeScript modules under the strictest settings, with `fhec/runtime` resolved to
// this checkout's runtime (or through the package's exports, viaPackage). Diagnostics per file.
import * as path from 'node:path';
import ts from 'typescript';
import { ROOT } from './shared.js';

export function typeCheck(files: string[], viaPackage = false): Map<string, string[]> {
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2023,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2023.d.ts'],
    types: ['node'],
    typeRoots: [path.join(ROOT, 'node_modules/@types')],
    strict: true,
    noUnusedLocals: true,
    noUnusedParameters: true,
    noImplicitReturns: true,
    noUncheckedIndexedAccess: true,
    exactOptionalPropertyTypes: true,
    noPropertyAccessFromIndexSignature: true,
    noImplicitOverride: true,
    skipLibCheck: true,
    noEmit: true,
    ...(viaPackage ? {} : { paths: { 'fhec/runtime': [path.join(ROOT, 'runtime/index.ts')] } }),
  };
  const program = ts.createProgram(files, options);
  const text = (d: ts.Diagnostic) =>
    (d.file ? `${path.basename(d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}: ` : '') +
    ts.flattenDiagnosticMessageText(d.messageText, '\n');
  const out = new Map<string, string[]>();
  const global = program.getOptionsDiagnostics().map(text);
  for (const f of files) {
    const sf = program.getSourceFile(f);
    const diagnostics = sf ? [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)].map(text) : ['not part of the program'];
    out.set(f, [...global, ...diagnostics]);
  }
  return out;
}
