// `tinyedge log` and `tinyedge stat` as a user runs them: the real CLI in a process of its own,
// against a running server over its admin API.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { request } from 'undici';
import { parseConfig } from '../../src/server/config.ts';
import { startDemoOrigin, type DemoOrigin } from '../../src/server/demo-origin.ts';
import { EdgeServer } from '../../src/server/server.ts';
import { buildGuest, ROOT } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const BIN = join(ROOT, 'bin/tinyedge.js');
const OP = 'operator-token-0123456789';
const A = 'tenant-a-token-0123456789';

/** A CLI process whose stdout lines are collected as they come. */
class Cli {
  readonly lines: string[] = [];
  readonly stderr: string[] = [];
  readonly child: ChildProcessWithoutNullStreams;
  private waiters: Array<() => void> = [];

  constructor(args: string[], token: string) {
    this.child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, TINYEDGE_TOKEN: token } });
    let rest = '';
    this.child.stdout.setEncoding('utf8').on('data', (c: string) => {
      rest += c;
      const parts = rest.split('\n');
      rest = parts.pop() ?? '';
      this.lines.push(...parts);
      for (const w of this.waiters.splice(0)) w();
    });
    this.child.stderr.setEncoding('utf8').on('data', (c: string) => this.stderr.push(c));
  }

  async waitFor(pick: (line: string) => boolean): Promise<string> {
    for (;;) {
      const l = this.lines.find(pick);
      if (l !== undefined) return l;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  stop(): void {
    this.child.kill();
  }
}

/** Until a CLI's stream is attached (or gone): the server counts its live log readers. */
async function readersOf(edge: EdgeServer, n: number): Promise<void> {
  while (edge.liveLog.readerCount !== n) await new Promise((r) => setTimeout(r, 20));
}

describe('tinyedge log and stat against a running server', needsKvm(), () => {
  let edge: EdgeServer;
  let origin: DemoOrigin;
  const send = async (host: string, path: string): Promise<void> => {
    const r = await request(`${edge.front.url}${path}`, { headers: { host, connection: 'close' } });
    await r.body.text();
  };
  /** Starts a CLI once the readers of earlier tests have gone, and waits until its stream is attached. */
  const follow = async (args: string[], token: string): Promise<Cli> => {
    await readersOf(edge, 0);
    const cli = new Cli(args, token);
    await readersOf(edge, 1);
    return cli;
  };

  before(async () => {
    origin = await startDemoOrigin('127.0.0.1', 0);
    const yaml = `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0, operatorToken: ${OP} }
tenants:
  - name: a
    hosts: [a.test]
    token: ${A}
    origins: [{ name: default, url: "${origin.url}" }]
    programs:
      - { name: echo, file: ${buildGuest('sdk_headers')}, routes: [{ prefix: /p }], memory: 16MiB }
  - name: b
    hosts: [b.test]
    token: tenant-b-token-0123456789
    origins: [{ name: default, url: "${origin.url}" }]
`;
    edge = await EdgeServer.start(parseConfig(yaml, { file: '/tmp/tinyedge-observe-test.yaml' }), { logger: pino({ level: 'silent' }) });
  });
  after(async () => {
    await edge?.close();
    await origin?.close();
  });

  test('tinyedge log prints a line per request of its tenant, with the program\'s log lines', async () => {
    const cli = await follow(['log', '--admin', edge.admin.url, '--tenant', 'a'], A);
    try {
      await send('b.test', '/not-mine');
      await send('a.test', '/page');
      await send('a.test', '/p/x');
      const page = await cli.waitFor((l) => l.includes('a.test/page'));
      assert.match(page, /^\d\d:\d\d:\d\d\.\d{3} a 200 GET a\.test\/page miss \S+ \S+B origin default 200 shard [01]$/);
      const prog = await cli.waitFor((l) => l.includes('a.test/p/x'));
      assert.match(prog, / 201 GET a\.test\/p\/x miss .* program echo \(a\/echo@\d+\) vm \S+ \(guest \S+, \d+ exits, \d+ pages\) shard [01]$/);
      await cli.waitFor((l) => l === '    log: served a request');
      assert.ok(cli.lines.every((l) => !l.includes('not-mine')));
    } finally {
      cli.stop();
    }
  });

  test('tinyedge log --json with filters prints the records as JSON lines', async () => {
    const cli = await follow(['log', '--admin', edge.admin.url, '--json', '--cache', 'miss', '--prefix', '/j/'], OP);
    try {
      await send('a.test', '/j/1');
      await send('a.test', '/j/1');
      await send('b.test', '/j/2');
      await send('a.test', '/k/3');
      const second = await cli.waitFor((l) => l.includes('"/j/2"'));
      const records = cli.lines.map((l) => JSON.parse(l) as { url: string; tenant: string; cache: string });
      assert.deepEqual(records.map((r) => `${r.tenant} ${r.url} ${r.cache}`), ['a /j/1 miss', 'b /j/2 miss']);
      assert.equal((JSON.parse(second) as { host: string }).host, 'b.test');
    } finally {
      cli.stop();
    }
  });

  test('tinyedge log says why it cannot follow: a bad token, a tenant not its own, a bad filter or sample', async () => {
    const run = promisify(execFile);
    const fails = async (args: string[], token: string, why: RegExp): Promise<void> => {
      await assert.rejects(run(process.execPath, [BIN, ...args], { env: { ...process.env, TINYEDGE_TOKEN: token } }), (err: { code: number; stderr: string }) => {
        assert.equal(err.code, 1);
        assert.match(err.stderr, why);
        return true;
      });
    };
    await fails(['log', '--admin', edge.admin.url], 'wrong-token-0123456789', /401 unknown token/);
    await fails(['log', '--admin', edge.admin.url, '--tenant', 'b'], A, /403 token not valid for tenant b/);
    await fails(['log', '--admin', edge.admin.url, '--status', '200'], OP, /400 status filter "200"/);
    await fails(['log', '--admin', edge.admin.url, '--sample', '2'], OP, /400 sample filter "2": expected a fraction above 0 and at most 1/);
  });

  test('tinyedge stat --once prints each tenant\'s totals; a tenant\'s token shows only its own', async () => {
    for (let i = 0; i < 3; i++) await send('a.test', '/stat');
    await send('a.test', '/p/stat');
    const run = promisify(execFile);
    const all = await run(process.execPath, [BIN, 'stat', '--once', '--admin', edge.admin.url], { env: { ...process.env, TINYEDGE_TOKEN: OP } });
    const rows = all.stdout.trim().split('\n').map((l) => l.trim().split(/\s{2,}/));
    assert.deepEqual(rows[0], ['tenant', 'requests', 'hit', 'out', 'vm p50', 'vm p99', '5xx', 'vm errors', 'evictions', 'cpu guest', 'cpu host']);
    const a = rows.find((r) => r[0] === 'a')!;
    const stats = (await (await request(`${edge.admin.url}/v1/tenants/a/stats`, { headers: { authorization: `Bearer ${A}` } })).body.json()) as { counters: { requests: number } };
    assert.equal(Number(a[1]), stats.counters.requests);
    assert.ok(stats.counters.requests >= 4);
    assert.match(a[4]!, /^\d+(\.\d)?(µs|ms)$/);
    assert.notEqual(a[9], '0µs');
    assert.ok(rows.some((r) => r[0] === 'b'));
    // The operator also sees the shared cache as a whole, under the table.
    assert.match(all.stdout, /\n\ncache: \d+(\.\d)?[KMG]? of \d+(\.\d)?[KMG]? \(\d+\.\d%, up to \d+(\.\d)?[KMG]? without a restart\), \d+ objects; arena \d+(\.\d)?[KMG]? grown, \d+(\.\d)?[KMG]? in use\n$/);

    const mine = await run(process.execPath, [BIN, 'stat', '--once', '--admin', edge.admin.url], { env: { ...process.env, TINYEDGE_TOKEN: A } });
    assert.deepEqual(mine.stdout.trim().split('\n').slice(1).map((l) => l.split(/\s+/)[0]), ['a']);
  });

  test('tinyedge stat refreshes rates every interval', async () => {
    const cli = new Cli(['stat', '--admin', edge.admin.url, '--interval', '200'], A);
    try {
      await cli.waitFor((l) => l.startsWith('tenant'));
      await send('a.test', '/rate');
      // A block whose row for a shows requests in its interval.
      await cli.waitFor((l) => /^a\s+\d/.test(l) && !/^a\s+0\.0\s/.test(l));
    } finally {
      cli.stop();
    }
  });
});

describe('tinyedge log on a server without programs', () => {
  let edge: EdgeServer;
  let origin: DemoOrigin;

  before(async () => {
    origin = await startDemoOrigin('127.0.0.1', 0);
    // One shard: every record goes through one batcher, in the order the requests ended.
    const yaml = `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0, operatorToken: ${OP}, shards: 1 }
tenants:
  - name: a
    hosts: [a.test]
    token: ${A}
    origins: [{ name: default, url: "${origin.url}" }]
`;
    edge = await EdgeServer.start(parseConfig(yaml, { file: '/tmp/tinyedge-observe-sample-test.yaml' }), { logger: pino({ level: 'silent' }) });
  });
  after(async () => {
    await edge?.close();
    await origin?.close();
  });

  test('--sample prints about that fraction of the requests; a sample that is not a fraction is refused', async () => {
    const run = promisify(execFile);
    await assert.rejects(run(process.execPath, [BIN, 'log', '--admin', edge.admin.url, '--sample', '2'], { env: { ...process.env, TINYEDGE_TOKEN: OP } }), (err: { code: number; stderr: string }) => {
      assert.equal(err.code, 1);
      assert.match(err.stderr, /400 sample filter "2": expected a fraction above 0 and at most 1/);
      return true;
    });
    const sampled = new Cli(['log', '--admin', edge.admin.url, '--json', '--sample', '0.5', '--prefix', '/s/'], OP);
    await readersOf(edge, 1);
    // Every record of /m/, to know when the log thread has written the batches before its last.
    const marker = new Cli(['log', '--admin', edge.admin.url, '--json', '--prefix', '/m/'], OP);
    await readersOf(edge, 2);
    const exited = new Promise<number | null>((resolve) => sampled.child.once('exit', resolve));
    try {
      for (let round = 0; round < 20; round++) {
        await Promise.all(Array.from({ length: 20 }, async (_, i) => {
          const r = await request(`${edge.front.url}/s/${round}/${i}`, { headers: { host: 'a.test' } });
          await r.body.text();
        }));
      }
      const r = await request(`${edge.front.url}/m/end`, { headers: { host: 'a.test' } });
      await r.body.text();
      // The marker's batch came after every /s/ record's, and the log thread serialises a batch
      // for all its readers at once: the sampled reader's records are written by now.
      await marker.waitFor((l) => l.includes('"/m/end"'));
      edge.liveLog.endStreams();
      assert.equal(await exited, 0);
    } finally {
      sampled.stop();
      marker.stop();
    }
    const urls = sampled.lines.map((l) => String((JSON.parse(l) as { url: string }).url));
    assert.ok(urls.every((u) => u.startsWith('/s/')));
    // 400 requests, each kept with a chance of a half: the bounds are eight standard deviations away.
    assert.ok(urls.length > 120 && urls.length < 280, `${urls.length} of 400`);
    assert.equal(new Set(urls).size, urls.length);
    assert.match(sampled.stderr.join(''), /the server ended the stream/);
  });
});
