// The slow neighbour: tenant B's cache hits while tenant A's program burns CPU (50 ms a request,
// `concurrency: 8`, 8 clients) or loops until its time limit, beside B's hits with A idle, all in
// one run against one `tinyedge serve` (unpinned, on every core). Also A's own cache hits while
// its program burns: a busy program must not hold up unrelated requests of its own tenant. The
// target (issue 12): B's p99 at most 10 ms while A burns or loops. Usage:
//   node --import tsx bench/neighbour.ts [--duration 10] [--shards N] [--slice 2ms]
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildGuest } from '../test/helpers/guests.ts';
import { BENCH_DIR, machineLine, printTable } from './lib.ts';
import { freePort, startHarness, waitReady } from './proxy-servers.ts';
import { runWrkWithHeaders, type WrkResult } from './wrk.ts';

const { values } = parseArgs({ options: { duration: { type: 'string', default: '10' }, shards: { type: 'string', default: '1' }, slice: { type: 'string', default: '2ms' } } });
const durationSec = Number(values.duration);
const TARGET_P99_MS = 10;
const ROOT = join(BENCH_DIR, '..');

const harness = startHarness('tinyedge-neighbour-');
const { children, dir } = harness;

// The origin of both tenants' cached objects: 100 B, fresh for 10 minutes.
const origin = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=600', 'content-length': 100 });
  res.end('x'.repeat(100));
});
await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
const originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;

const [port, adminPort] = [await freePort(), await freePort()];
const config = join(dir, 'neighbour.yaml');
writeFileSync(config, `server:
  listen: 127.0.0.1:${port}
  admin: 127.0.0.1:${adminPort}
  shards: ${values.shards}
  slice: ${values.slice}
tenants:
  - name: a
    hosts: [a.test]
    token: a-token-0123456789
    origins: [{ name: default, url: "${originUrl}" }]
    programs:
      - name: busy
        file: ${buildGuest('sdk_misbehave')}
        routes: [{ prefix: /burn }, { prefix: /loop }]
        concurrency: 8
        timeout: 1s
        queueTimeout: 30s
  - name: b
    hosts: [b.test]
    token: b-token-0123456789
    origins: [{ name: default, url: "${originUrl}" }]
`);
const server = children.spawn(process.execPath, [join(ROOT, 'bin/tinyedge.js'), 'serve', '--config', config], undefined, ROOT);
const url = `http://127.0.0.1:${port}`;
await waitReady(`${url}/obj`, server, 30_000, { host: 'b.test' });
await waitReady(`${url}/obj`, server, 30_000, { host: 'a.test' });

const hits = (host: string): Promise<WrkResult> => runWrkWithHeaders({ url: `${url}/obj`, connections: 10, durationSec }, [`Host: ${host}`], children);
/** Runs `measure` while 8 clients keep A's program busy on `path`. */
async function whileBusy(path: string, measure: () => Promise<WrkResult>): Promise<WrkResult> {
  const load = runWrkWithHeaders({ url: `${url}${path}`, connections: 8, durationSec: durationSec + 3 }, ['Host: a.test'], children);
  await new Promise((r) => setTimeout(r, 1_000));
  const result = await measure();
  await load;
  return result;
}

const rows: Array<[string, WrkResult]> = [];
rows.push(['B hits, A idle (baseline)', await hits('b.test')]);
rows.push(['B hits, A burning 50 ms × 8', await whileBusy('/burn?ms=50', () => hits('b.test'))]);
rows.push(['B hits, A looping to its 1 s limit × 8', await whileBusy('/loop', () => hits('b.test'))]);
rows.push(["A's own hits, A burning 50 ms × 8", await whileBusy('/burn?ms=50', () => hits('a.test'))]);

console.log(`slow neighbour — ${machineLine()}; tinyedge serve unpinned, shards ${values.shards}, slice ${values.slice}; wrk -t1 -c10 ${durationSec}s on the hits, wrk -t1 -c8 on A's program`);
printTable(['load', 'req/s', 'p50 ms', 'p99 ms', `p99 ≤ ${TARGET_P99_MS} ms`, 'errors'], rows.map(([name, r], i) => [
  name, r.requestsPerSec, r.p50Ms, r.p99Ms, i === 0 ? '(baseline)' : r.p99Ms <= TARGET_P99_MS ? 'yes' : 'NO', r.errors,
]));
await children.stop(server);
origin.close();
process.exit(0);
