#!/usr/bin/env node
// Thin launcher: the CLI is compiled from compiler/cli.ts into dist/ by `npm install` (prepare).
import('../dist/compiler/cli.js').then((m) => m.main(process.argv)).catch((e) => {
  console.error(`fhec: cannot start (${e && e.message ? e.message : e}); run \`npm install\` to build dist/`);
  process.exit(1);
});
