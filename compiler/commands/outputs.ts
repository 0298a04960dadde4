// Output files of the CLI verbs: checked before any long work starts, written atomically.
// - An output must not be one of the verb's inputs (the model and its external data, the inputs JSON,
//   the plan and its sidecars, the calibration text...): compared by real path (symlinks resolved) and
//   by inode (hard links), so `--out model.onnx` or `-o` onto a link to the inputs cannot destroy them.
// - Two outputs of one run must not be the same file.
// - The output's folder must be writable (missing folders are created, under a writable ancestor),
//   so a read-only or mistyped folder fails in a second instead of after a long compile.

import { externalRegions, type WeightRecipe } from '../../ir/weights/recipe.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FhecError } from '../../ir/errors.js';
import { onnx } from '../onnx/proto.js';
import { ioReason } from '../../runtime/plan/files.js';

export interface OutputFile {
  path: string;
  /** The flag that named it (or, for derived files, what derived them). */
  flag: string;
}

interface Identity {
  real: string;
  inode?: string;
}

function identityOf(file: string): Identity {
  const abs = path.resolve(file);
  try {
    const st = fs.statSync(abs);
    return { real: fs.realpathSync(abs), inode: `${st.dev}:${st.ino}` };
  } catch {
    // Not there (yet): its folder's real path, and its name.
    let dir = path.dirname(abs);
    const rest = [path.basename(abs)];
    for (;;) {
      try {
        return { real: path.join(fs.realpathSync(dir), ...rest) };
      } catch {
        const up = path.dirname(dir);
        if (up === dir) return { real: abs };
        rest.unshift(path.basename(dir));
        dir = up;
      }
    }
  }
}

function same(a: Identity, b: Identity): boolean {
  return a.real === b.real || (a.inode !== undefined && a.inode === b.inode);
}

/** The nearest folder of `file` that exists; refused unless it is a writable directory. */
function checkWritableFolder(out: OutputFile): void {
  let dir = path.dirname(path.resolve(out.path));
  while (!fs.existsSync(dir)) dir = path.dirname(dir);
  const where = { file: out.path, field: out.flag };
  if (!fs.statSync(dir).isDirectory()) throw new FhecError(`cannot write here: '${dir}' is not a folder`, where);
  try {
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (e) {
    throw new FhecError(`cannot write into folder '${dir}': ${ioReason(e)}`, where);
  }
  try {
    if (fs.statSync(out.path).isDirectory()) throw new FhecError('is a folder, not a file', where);
  } catch (e) {
    if (e instanceof FhecError) throw e;
  }
}

/** mkdir -p, one level at a time (Node's recursive mkdir never returns under /proc). */
function makeFolders(dir: string, out: OutputFile): void {
  const missing: string[] = [];
  for (let d = dir; !fs.existsSync(d); d = path.dirname(d)) missing.unshift(d);
  for (const d of missing) {
    try {
      fs.mkdirSync(d);
    } catch (e) {
      throw new FhecError(`cannot create the output folder '${d}': ${ioReason(e)}`, { file: out.path, field: out.flag });
    }
  }
}

/**
 * Refuses outputs that resolve to an input or to each other, and outputs whose folder is not
 * writable; creates missing output folders. `inputs` may list files that do not exist.
 */
export function checkOutputs(outputs: OutputFile[], inputs: string[]): void {
  const ins = inputs.map((f) => ({ file: f, id: identityOf(f) }));
  const seen: { out: OutputFile; id: Identity }[] = [];
  for (const out of outputs) {
    const id = identityOf(out.path);
    const hit = ins.find((i) => same(i.id, id));
    if (hit) {
      throw new FhecError(`would overwrite the input ${hit.file}${hit.id.real !== path.resolve(hit.file) ? ` (${hit.id.real})` : ''}; write the output elsewhere`, { file: out.path, field: out.flag });
    }
    const twice = seen.find((s) => same(s.id, id));
    if (twice) throw new FhecError(`is also the output of ${twice.out.flag}; give them different files`, { file: out.path, field: out.flag });
    seen.push({ out, id });
    checkWritableFolder(out);
  }
  for (const out of outputs) makeFolders(path.dirname(path.resolve(out.path)), out);
}

/** An ONNX model and the external data files it names (best effort: a model that does not parse lists only itself; loading reports why). */
export function modelFiles(model: string): string[] {
  const files = [model];
  try {
    const proto = onnx.ModelProto.decode(fs.readFileSync(model));
    const dir = path.dirname(path.resolve(model));
    const tensors = [...(proto.graph?.initializer ?? [])];
    for (const n of proto.graph?.node ?? []) for (const a of n.attribute ?? []) if (a.t) tensors.push(a.t);
    for (const t of tensors) {
      const loc = (t.externalData ?? []).find((e) => e.key === 'location')?.value;
      if (loc) files.push(path.resolve(dir, loc));
    }
  } catch {
    // reported by the loader
  }
  return [...new Set(files)];
}

/** A plan file and every sidecar it names: weights (or weight list and store), embedding table, step plans (best effort). */
export function planFiles(plan: string): string[] {
  const files = [plan];
  const dir = path.dirname(path.resolve(plan));
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(fs.readFileSync(plan, 'utf8')) as Record<string, unknown>;
  } catch {
    return files;
  }
  const name = (v: unknown): string | undefined => (typeof v === 'string' && v && !/[/\\]/.test(v) ? path.join(dir, v) : undefined);
  const add = (f: string | undefined) => f && files.push(f);
  const weights = doc.weights as { file?: unknown } | undefined;
  add(name(weights?.file));
  add(name((doc.model as { embedding?: { file?: unknown } } | undefined)?.embedding?.file));
  // A generation plan: the embedding table and the folder of step plans (everything in it).
  add(name(doc.embedding));
  files.push(...streamedDataFiles(doc, dir));
  const steps = name(doc.steps);
  if (steps) {
    try {
      for (const e of fs.readdirSync(steps, { recursive: true, withFileTypes: true })) {
        if (!e.isFile()) continue;
        const f = path.join(e.parentPath, e.name);
        files.push(f);
        if (f.endsWith('.json')) {
          try {
            files.push(...streamedDataFiles(JSON.parse(fs.readFileSync(f, 'utf8')) as Record<string, unknown>, path.dirname(f)));
          } catch {
            // not a plan
          }
        }
      }
    } catch {
      // not compiled yet
    }
  }
  return [...new Set(files)];
}

/** The model data files a plan that streams its weights reads (its matrices' recipes), resolved. */
function streamedDataFiles(doc: Record<string, unknown>, dir: string): string[] {
  if (!Array.isArray(doc.matrices)) return [];
  try {
    return doc.matrices.flatMap((m) => externalRegions((m as { weight: WeightRecipe }).weight).map((r) => path.resolve(dir, r.file)));
  } catch {
    return []; // a malformed table: loading the plan names the problem
  }
}
