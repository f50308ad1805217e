// Entry of the live log's thread when tinyedge runs from its TypeScript sources (tests, dev
// scripts): registers tsx's loader in this thread, then runs the TypeScript worker. Compiled,
// live-log.ts starts dist/server/log-worker.js directly and this file is not used.
import { register } from 'tsx/esm/api';

register();
await import('./log-worker.ts');
