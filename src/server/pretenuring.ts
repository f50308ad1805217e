// V8's allocation-site pretenuring, turned off for the server's process. V8 allocates the objects
// of a site straight in the old generation once nearly all of them are alive at a young-generation
// collection (a scavenge). Under batched program load that is what a scavenge sees: the requests of
// a batch are all in flight, so V8 tenures the request path's sites (the raw head's fields, the
// program's call and answer) for good. Those objects then die in the old generation, and until the
// next full collection every young object they point to survives each scavenge: ~1.4 KB of old
// garbage a request, scavenges of 4–12 ms, and the batched row's p99 at 9–11× its p50. With
// pretenuring off the same load is 15–20 % faster and its p99 halves; nothing else moves
// (docs/server.md, "The young generation"). A request's objects die with it, so the server has
// nothing that pretenuring would help.
import { setFlagsFromString } from 'node:v8';

/** Node's own command line sets pretenuring either way: the operator's choice stands. */
const CHOSEN = /^--(?:no-)?allocation[-_]site[-_]pretenuring$/;

/**
 * Turns V8's allocation-site pretenuring off for this process (every thread: flags are
 * process-wide), unless node was started with either form of the flag. Call before the request
 * path runs: a site tenured before stays tenured.
 */
export function turnOffPretenuring(): void {
  if (process.execArgv.some((arg) => CHOSEN.test(arg))) return;
  setFlagsFromString('--no-allocation-site-pretenuring');
}
