#!/usr/bin/env node
// Thin launcher: the CLI is compiled from compiler/cli.ts into dist/ by `npm install` (prepare).
// node-seal 7 needs Node >= 22. `npx fhec` and npm scripts already use the Node this project pins
// (the `node` dev dependency); when fhec is started by an older `node` directly, re-run it with the
// pinned one, or say plainly what is needed.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const self = fileURLToPath(import.meta.url);
const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
  const pinned = join(dirname(self), '..', 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(pinned)) {
    console.error(`fhec: needs Node >= 22 (node-seal 7); this is Node ${process.versions.node}. Run it with \`npx fhec\` after \`npm ci\`, or install Node 22+.`);
    process.exit(2);
  }
  const r = spawnSync(pinned, [self, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

import('../dist/compiler/cli.js').then((m) => m.main(process.argv)).catch((e) => {
  console.error(`fhec: cannot start (${e && e.message ? e.message : e}); run \`npm install\` to build dist/`);
  process.exit(1);
});
