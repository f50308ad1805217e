// Entry of a shard's thread when tinyedge runs from its TypeScript sources (tests, dev scripts):
// registers tsx's loader in this thread, then runs the TypeScript worker. Compiled, shards.ts
// starts dist/server/shard-worker.js directly and this file is not used.
import { register } from 'tsx/esm/api';

register();
await import('./shard-worker.ts');
