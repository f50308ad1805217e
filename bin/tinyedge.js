#!/usr/bin/env node
// CLI entry: loads the TypeScript sources through tsx's ESM loader, then runs the CLI.
import { register } from 'tsx/esm/api';

// `tinyedge bench ... | head`: a reader that went away is not an error worth a stack trace.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
