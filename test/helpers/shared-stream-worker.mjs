// Entry of the shared-store stream test workers: registers tsx's loader in this thread, then runs
// the TypeScript worker.
import { register } from 'tsx/esm/api';

register();
await import('./shared-stream-worker.ts');
