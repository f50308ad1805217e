// Entry of a VM worker thread: registers tsx's loader in this thread, then runs the TypeScript
// worker. (Loader flags in a worker's execArgv do not reach its entry module on Node 20.)
import { register } from 'tsx/esm/api';

register();
await import('./pool-worker.ts');
