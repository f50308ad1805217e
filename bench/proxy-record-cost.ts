// What recording a fast-path hit for the live log costs the serving thread, apart from
// everything else `bench:proxy -- --only serve-log` measures (the log thread, the reader's
// socket, the machine's other work): a loop that does what a hit does to the strings and memory
// around its record — the request head decoded and split as the raw front does, then a spread of
// memory touched as a hit's other work touches it (so that the record's rows are not in the
// cache each time, as they are not in the server) — with and without `RecordBatcher.pushFast`,
// alternating, medians of the rounds. `--baseline FILE` adds another build of record-batch.js
// (an older commit's dist/server/record-batch.js) measured the same way in the same run.
//   node --import tsx bench/proxy-record-cost.ts [--rounds 15] [--hits 200000] [--touch 64] [--baseline FILE]
// Run it pinned and under the shared lock: flock /tmp/bench.lock taskset -c 0 node --import tsx bench/proxy-record-cost.ts
import { pathToFileURL } from 'node:url';
import { RecordBatcher as Current, releaseBatch } from '../src/server/record-batch.ts';
import { quartiles, touchCacheLines } from './lib.ts';

interface Batcher {
  pushFast(shard: number, tenant: string, host: string, method: string, url: string, status: number, bytes: number, startedMs: number, totalUs: number): void;
  flush(): void;
}
type BatcherClass = new (send: (batch: { state: Int32Array<ArrayBufferLike> }) => void) => Batcher;

interface Options {
  rounds: number;
  hits: number;
  /** Cache lines of a 16 MiB region written per hit, at random. */
  touch: number;
  baseline?: string;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { rounds: 15, hits: 200_000, touch: 64 };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    const n = Number(value);
    if (flag === '--baseline' && value !== undefined) opts.baseline = value;
    else if ((flag === '--rounds' || flag === '--hits' || flag === '--touch') && Number.isInteger(n) && n > 0) opts[flag.slice(2) as 'rounds' | 'hits' | 'touch'] = n;
    else throw new Error(`usage: bench/proxy-record-cost.ts [--rounds N] [--hits N] [--touch LINES] [--baseline FILE]; got '${flag} ${value}'`);
  }
  return opts;
}

const HEAD = Buffer.from('GET /100b HTTP/1.1\r\nHost: 127.0.0.1:34567\r\nUser-Agent: wrk\r\n\r\n', 'latin1');
let sink = 0;

/** One round of `hits` hits: µs per hit. `batcher` undefined: the hits without a record. */
function round(hits: number, touch: number, batcher: Batcher | undefined): number {
  const started = performance.now();
  for (let i = 0; i < hits; i++) {
    // The request's strings as the raw front makes them (src/http/fast-path.ts): slices of the decoded head.
    const lines = HEAD.toString('latin1').split('\r\n');
    const url = lines[0]!.slice(4, -9);
    const host = lines[1]!.slice(6);
    touchCacheLines(touch);
    const t = performance.now();
    if (batcher === undefined) sink += t + url.length + host.length;
    else batcher.pushFast(0, 'bench', host, 'GET', url, 200, 100, t, 12.3);
  }
  return ((performance.now() - started) * 1000) / hits;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const kinds: Array<[string, BatcherClass]> = [['this checkout', Current as unknown as BatcherClass]];
  if (opts.baseline !== undefined) {
    const mod = (await import(pathToFileURL(opts.baseline).href)) as { RecordBatcher: BatcherClass };
    kinds.push([`baseline (${opts.baseline})`, mod.RecordBatcher]);
  }
  // The log thread keeping up: each batch released as it goes, so two column sets take turns.
  const batchers = kinds.map(([name, B]) => [name, new B((b) => queueMicrotask(() => releaseBatch(b as never)))] as const);
  const without: number[] = [];
  const withRecord = new Map<string, number[]>(kinds.map(([name]) => [name, []]));
  // Warm-up: every variant optimised before the rounds count.
  for (const [, b] of batchers) round(opts.hits / 4, opts.touch, b);
  round(opts.hits / 4, opts.touch, undefined);
  for (let r = 0; r < opts.rounds; r++) {
    without.push(round(opts.hits, opts.touch, undefined));
    for (const [name, b] of batchers) {
      withRecord.get(name)!.push(round(opts.hits, opts.touch, b));
      b.flush();
      // The batches' releases run.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  console.log(`fast-path hit records on the serving thread: ${opts.rounds} rounds of ${opts.hits} hits, ${opts.touch} cache lines of 16 MiB touched a hit; node ${process.version}`);
  console.log('');
  console.log("| records | µs per hit (median) | the record's cost per hit, paired (quartiles) |");
  console.log('|---|--:|--:|');
  console.log(`| none | ${median(without).toFixed(3)} | - |`);
  for (const [name, runs] of withRecord) {
    const paired = runs.map((w, i) => (w - without[i]!) * 1000);
    const [lo, hi] = quartiles(paired);
    console.log(`| ${name} | ${median(runs).toFixed(3)} | ${median(paired).toFixed(0)} ns (${lo.toFixed(0)} … ${hi.toFixed(0)}) |`);
  }
  if (sink === 0.5) console.log('');
}

await main();
