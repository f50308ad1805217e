#!/usr/bin/env node
// CLI entry: runs the compiled CLI in dist/, which `npm run build` makes (`npm install` of the
// repository runs it; the published package ships it).
import module from 'node:module';
import { fileURLToPath } from 'node:url';

// Node 22.1 and later keep V8's compiled code of the CLI's modules between runs (faster starts);
// Node 20 has no such cache.
module.enableCompileCache?.();

// `tinyedge bench ... | head`: a reader that went away is not an error worth a stack trace.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

const entry = new URL('../dist/cli/main.js', import.meta.url);
let main;
try {
  ({ main } = await import(entry.href));
} catch (err) {
  if (err.code !== 'ERR_MODULE_NOT_FOUND' || !err.message.includes(fileURLToPath(entry))) throw err;
  process.stderr.write(`tinyedge: ${fileURLToPath(entry)} is missing: run \`npm run build\` first\n`);
  process.exit(1);
}
process.exitCode = await main(process.argv.slice(2));
