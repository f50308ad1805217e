// What recording fast-path hits for the live log costs the serving thread's real code: a
// `tinyedge serve` server (one shard) started in this process, one cached object, then
// `Shard.fastAnswer` — the raw front's call for a hit, without the socket — called in a loop,
// `--rounds` rounds alternating recording off (no reader) and on (every tenant, batches released
// as soon as they are sent, so no log thread runs). Where `bench/proxy-record-cost.ts` imitates
// a hit around the record, this runs the code a hit runs; neither has the network, the log
// thread or the reader in it, which `bench:proxy -- --only serve-log` has. `--touch LINES` writes
// that many random cache lines of 16 MiB between hits (as proxy-record-cost.ts does), standing
// for a hit's other work, which leaves little of the record's memory in the cache.
//   node --import tsx bench/proxy-record-shard.ts [--rounds 9] [--hits 400000] [--touch 0]
// Run it pinned and under the shared lock: flock /tmp/bench.lock taskset -c 0 node --import tsx bench/proxy-record-shard.ts
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { parseConfig } from '../src/server/config.ts';
import { releaseBatch } from '../src/server/record-batch.ts';
import { RECORD_NOTHING } from '../src/server/records.ts';
import { EdgeServer } from '../src/server/server.ts';
import { machineLine, median, quartiles, touchCacheLines } from './lib.ts';

interface Options {
  rounds: number;
  hits: number;
  touch: number;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { rounds: 9, hits: 400_000, touch: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    const n = Number(value);
    if ((flag === '--rounds' || flag === '--hits') && Number.isInteger(n) && n > 0) opts[flag.slice(2) as 'rounds' | 'hits'] = n;
    else if (flag === '--touch' && Number.isInteger(n) && n >= 0) opts.touch = n;
    else throw new Error(`usage: bench/proxy-record-shard.ts [--rounds N] [--hits N] [--touch LINES]; got '${flag} ${value}'`);
  }
  return opts;
}


async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const origin = createServer((_req, res) => res.writeHead(200, { 'cache-control': 'max-age=3600' }).end('x'.repeat(100)));
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
  const yaml = `server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0, operatorToken: bench-operator-token-0123456789, shards: 1 }
tenants:
  - { name: bench, hosts: [127.0.0.1], token: bench-token-0123456789, origins: [{ name: default, url: "http://127.0.0.1:${(origin.address() as AddressInfo).port}" }] }
`;
  const edge = await EdgeServer.start(parseConfig(yaml, { file: 'bench/proxy-record-shard.yaml' }), { logger: pino({ level: 'warn' }) });
  try {
    // Cached through the front, as wrk's first request caches it.
    const host = new URL(edge.front.url).host;
    for (let i = 0; i < 2; i++) await (await fetch(`${edge.front.url}/100b`)).arrayBuffer();
    const shard = edge.local;
    const req = { method: 'GET' as const, host, url: '/100b', cacheControl: undefined, fields: ['host', host], clientIp: undefined, close: false };
    /** One round: ns per hit. */
    const round = (): number => {
      const started = performance.now();
      for (let i = 0; i < opts.hits; i++) {
        // A string of its own each request, as the front decodes one.
        req.url = '/100b'.slice(0);
        if (shard.fastAnswer(req) === null) throw new Error('the object is not a fast-path hit');
        touchCacheLines(opts.touch);
      }
      return ((performance.now() - started) / opts.hits) * 1e6;
    };
    const off: number[] = [];
    const on: number[] = [];
    // A round of each first, unmeasured: the code optimised for both.
    for (let r = 0; r <= opts.rounds; r++) {
      shard.setRecording(RECORD_NOTHING, releaseBatch);
      const a = round();
      shard.setRecording({ all: true, tenants: [] }, releaseBatch);
      const b = round();
      if (r > 0) {
        off.push(a);
        on.push(b);
      }
    }
    shard.setRecording(RECORD_NOTHING, releaseBatch);
    const paired = on.map((b, r) => b - off[r]!);
    const [lo, hi] = quartiles(paired);
    console.log(`Shard.fastAnswer of a cached 100-byte object, in process: ${opts.rounds} rounds of ${opts.hits} hits each way, alternating; ${opts.touch} cache lines of 16 MiB written between hits`);
    console.log(`machine: ${machineLine()}`);
    console.log('');
    console.log('| recording | ns per hit (median) | its cost per hit, paired (quartiles) |');
    console.log('|---|--:|--:|');
    console.log(`| off | ${median(off).toFixed(0)} | - |`);
    console.log(`| on (every tenant) | ${median(on).toFixed(0)} | ${median(paired).toFixed(0)} ns (${lo.toFixed(0)} … ${hi.toFixed(0)}) |`);
  } finally {
    await edge.close();
    origin.close();
  }
}

await main();
