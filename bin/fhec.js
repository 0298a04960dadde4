#!/usr/bin/env node
// Thin launcher: the CLI is compiled from compiler/cli.ts into dist/ by `npm install` (prepare).
import('../dist/compiler/cli.js').then((m) => m.main(process.argv)).catch((e) => {
  console.error(`fhec: ${e && e.message ? e.message : e}`);
  process.exit(1);
});
