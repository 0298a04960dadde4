// The opset versions fhec implements. A model that imports a newer version of a domain we know may
// give its ops other semantics than our kernels follow; evaluating it with today's semantics would be
// silently wrong, so it is refused unless the user asks to proceed (`--allow-newer-opset`, a warning).
// Unknown domains are left to the unsupported-op check (their ops are refused by name).

import { FhecError } from '../../ir/errors.js';

/**
 * Newest version per domain ('' = ai.onnx): the newest ai.onnx opset among the ONNX node tests the
 * reference interpreter is checked against (test/onnx-conformance.test.ts), and com.microsoft's only one.
 */
const LATEST_OPSETS: Readonly<Record<string, number>> = { '': 28, 'com.microsoft': 1 };

/** Set from the CLI's --allow-newer-opset for the run (the CLI resets it on every invocation). */
export const opsetPolicy = { allowNewer: false, warn: (line: string) => void process.stderr.write(`${line}\n`) };

/** Refuses (or, when allowed, warns about) opsets newer than LATEST_OPSETS. */
export function checkOpsets(opsets: Record<string, number>, file: string): void {
  for (const [domain, version] of Object.entries(opsets)) {
    const latest = LATEST_OPSETS[domain];
    if (latest === undefined || version <= latest) continue;
    const name = domain || 'ai.onnx';
    const msg = `imports ${name} opset ${version}, newer than the ${latest} fhec implements`;
    if (!opsetPolicy.allowNewer) throw new FhecError(`${msg} (its ops may mean something else; pass --allow-newer-opset to evaluate them with opset ${latest} semantics)`, { file, field: 'opset_import' });
    opsetPolicy.warn(`fhec: warning: ${file}: ${msg}; evaluating with opset ${latest} semantics (--allow-newer-opset)`);
  }
}
