// Entry of a loader thread when tinyedge runs from its TypeScript sources (tests, dev scripts):
// registers tsx's loader in this thread, then runs the TypeScript worker. (Loader flags in a
// worker's execArgv do not reach its entry module on Node 20.) Compiled, loaders.ts starts
// dist/sandbox/loader-worker.js directly and this file is not used.
import { register } from 'tsx/esm/api';

register();
await import('./loader-worker.ts');
