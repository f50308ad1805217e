// `node --import tsx --import ./test/embedding/from-source.mjs app.mjs`: runs an app that imports
// tinyedge by its package name (`tinyedge/node`) against this checkout's TypeScript sources, with
// no build. Registers the resolve hook in source-hooks.mjs.
import { register } from 'node:module';

register('./source-hooks.mjs', import.meta.url);
