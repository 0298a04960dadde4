// The script of a worker thread: the compiled NAME.js beside the module that starts it, or (when
// running from the TypeScript sources, as the tests do) NAME.ts bundled once per process with
// esbuild; node-seal stays an external import so it finds its wasm file. One implementation for
// every worker fhec starts (evaluation workers, the refresh-mask thread).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, type TransferListItem } from 'node:worker_threads';

const scripts = new Map<string, Promise<URL>>();

/** `name` is the script's file name without extension, beside `base` (the caller's import.meta.url). */
export function workerScript(base: string, name: string): Promise<URL> {
  const compiled = new URL(`./${name}.js`, base);
  let p = scripts.get(compiled.href);
  if (!p) {
    p = (async () => {
      if (compiled.protocol === 'file:' && fs.existsSync(fileURLToPath(compiled))) return compiled;
      const source = fileURLToPath(new URL(`./${name}.ts`, base));
      const esbuild = await import('esbuild');
      const out = path.join(os.tmpdir(), `fhec-${name}-${process.pid}-${Date.now()}.mjs`);
      await esbuild.build({
        entryPoints: [source],
        bundle: true,
        platform: 'node',
        format: 'esm',
        outfile: out,
        logLevel: 'silent',
        plugins: [
          {
            name: 'node-seal-external',
            setup(build) {
              build.onResolve({ filter: /^node-seal$/ }, async (args) => {
                if (args.pluginData === 'inner') return undefined;
                const r = await build.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, pluginData: 'inner' });
                return { path: pathToFileURL(r.path).href, external: true };
              });
            },
          },
        ],
      });
      return pathToFileURL(out);
    })();
    scripts.set(compiled.href, p);
  }
  return p;
}

/**
 * Starts worker script `name` (beside `base`), unreferenced, posts it `init`, and resolves once it answers
 * `{kind: 'ready'}`; a `{kind: 'error', message}` answer or an error event rejects (and ends the thread).
 */
export async function startWorker(base: string, name: string, init: unknown, transfer: TransferListItem[] = []): Promise<Worker> {
  const worker = new Worker(await workerScript(base, name));
  worker.unref();
  try {
    await new Promise<void>((resolve, reject) => {
      worker.once('error', reject);
      worker.once('message', (m: { kind: string; message?: string }) => (m.kind === 'ready' ? resolve() : reject(new Error(m.message ?? `unexpected ${m.kind}`))));
      worker.postMessage(init, transfer);
    });
  } catch (e) {
    void worker.terminate();
    throw e;
  }
  return worker;
}
