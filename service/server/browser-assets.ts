// The browser page's files: the static HTML (service/browser/static), the page's script bundled at
// server start by esbuild from its TypeScript source (service/browser/page.ts, with the client library
// and node-seal), and node-seal's wasm, which the page loads beside the bundle.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FhecError } from '../../ir/errors.js';

/** The project root: the nearest folder above this file with a package.json (source or dist/ layout). */
function projectRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json')) || !fs.existsSync(path.join(dir, 'service'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new FhecError('cannot find the fhec sources for the browser page');
    dir = up;
  }
  return dir;
}

export async function browserAssets(): Promise<{ staticDir: string; bundle: string; wasm: Uint8Array }> {
  const root = projectRoot();
  const entry = path.join(root, 'service', 'browser', 'page.ts');
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch {
    throw new FhecError('the browser page is bundled with esbuild, which is not installed (npm install esbuild, or serve with --no-browser)');
  }
  const r = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    minify: true,
    logLevel: 'silent',
    // Node's modules (and esbuild, which the worker pool loads lazily) are imported by code the page never
    // runs (plan files, node-seal's Node path, runtime/parallel/pool.ts):
    // they become empty CommonJS modules, so a call into one would fail loudly, not silently.
    plugins: [
      {
        name: 'node-builtins-empty',
        setup(b) {
          b.onResolve({ filter: /^(node:.*|module|fs|path|url|crypto|worker_threads|os|child_process|tty|esbuild)$/ }, (a) => ({ path: a.path, namespace: 'node-empty' }));
          b.onLoad({ filter: /.*/, namespace: 'node-empty' }, () => ({ contents: 'module.exports = {};', loader: 'js' }));
        },
      },
    ],
  });
  const wasmFile = path.join(path.dirname(fileURLToPath(import.meta.resolve('node-seal'))), 'seal_throws.wasm');
  return { staticDir: path.join(root, 'service', 'browser', 'static'), bundle: r.outputFiles[0]!.text, wasm: fs.readFileSync(wasmFile) };
}
