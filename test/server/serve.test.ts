// The multi-tenant server end to end: real HTTP over loopback, real VMs on worker threads, real
// origins in this process, a config written as YAML.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { type AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { parseConfig } from '../../src/server/config.ts';
import { EdgeServer } from '../../src/server/server.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const ALPHA_TOKEN = 'alpha-token-0123456789';
const BETA_TOKEN = 'beta-token-0123456789';
const OPERATOR_TOKEN = 'operator-token-0123456789';

/** A test origin that says who it is and echoes what the edge sent it. */
function startOrigin(name: string): Promise<{ server: Server; url: string; hits: () => number; lastHeaders: () => Record<string, unknown> }> {
  let hits = 0;
  let last: Record<string, unknown> = {};
  const server = createServer((req, res) => {
    hits++;
    last = req.headers;
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': req.url?.startsWith('/nocache') ? 'no-store' : 'max-age=60' });
    res.end(`${name} ${req.url}\n`);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits: () => hits, lastHeaders: () => last })));
}

describe('tinyedge serve', needsKvm(), () => {
  let edge: EdgeServer;
  let alphaOrigin: Awaited<ReturnType<typeof startOrigin>>;
  let betaOrigin: Awaited<ReturnType<typeof startOrigin>>;
  const agent = new Agent({ connections: 256 });

  const get = async (host: string, path: string, init: { method?: 'GET' | 'POST'; headers?: Record<string, string> } = {}) => {
    const r = await request(`${edge.front.url}${path}`, { method: init.method ?? 'GET', headers: { host, ...init.headers }, dispatcher: agent });
    return { status: r.statusCode, headers: r.headers, body: await r.body.text() };
  };
  const admin = async (method: 'GET' | 'POST' | 'PUT', path: string, token: string, body?: string | Buffer) => {
    const r = await request(`${edge.admin.url}${path}`, { method, headers: { authorization: `Bearer ${token}` }, body, dispatcher: agent });
    return { status: r.statusCode, json: (await r.body.json()) as Record<string, unknown> };
  };
  const vmCalls = async (tenant: string, token: string): Promise<number> => ((await admin('GET', `/v1/tenants/${tenant}/stats`, token)).json.counters as { vmCalls: number }).vmCalls;

  before(async () => {
    alphaOrigin = await startOrigin('alpha-origin');
    betaOrigin = await startOrigin('beta-origin');
    const yaml = `
server:
  # One shard: tests here watch that shard's program pool fill up.
  shards: 1
  listen: 127.0.0.1:0
  admin: 127.0.0.1:0
  operatorToken: ${OPERATOR_TOKEN}
tenants:
  - name: alpha
    hosts: [alpha.test]
    token: ${ALPHA_TOKEN}
    origins: [{ name: default, url: "${alphaOrigin.url}" }, { name: dead, url: "http://127.0.0.1:1" }]
    routes: [{ prefix: /dead, origin: dead }]
    programs:
      - { name: gen, file: ${buildGuest('sdk_headers')}, roles: [generate], routes: [{ prefix: /gen }] }
      - { name: calls, file: ${buildGuest('sdk_hostcalls')}, roles: [generate], routes: [{ prefix: /fetch }, { prefix: /kv }] }
      - { name: crashy, file: ${buildGuest('sdk_misbehave')}, roles: [generate], routes: [{ prefix: /m }, { prefix: /crash }], maxRequestSize: 1KiB }
      - { name: hooks, file: ${buildGuest('sdk_hostcalls')}, roles: [recv, deliver] }
  - name: beta
    hosts: [beta.test]
    token: ${BETA_TOKEN}
    origins: [{ name: default, url: "${betaOrigin.url}" }]
    programs:
      - name: misbehave
        file: ${buildGuest('sdk_misbehave')}
        roles: [generate]
        routes: [{ prefix: /m }, { prefix: /crash }, { prefix: /loop }]
        timeout: 300ms
        concurrency: 1
        queueTimeout: 50ms
      - name: busy
        file: ${buildGuest('sdk_misbehave')}
        roles: [generate]
        routes: [{ prefix: /busy }]
        concurrency: 8
        queueTimeout: 5s
  - name: gamma
    hosts: [gamma.test]
    token: gamma-token-0123456789
    programs:
      - { name: only, file: ${buildGuest('sdk_headers')}, roles: [generate], routes: [{ prefix: /only }] }
      - { name: hooks, file: ${buildGuest('sdk_hostcalls')}, roles: [recv, deliver] }
`;
    edge = await EdgeServer.start(parseConfig(yaml, { file: '/tmp/tinyedge-test.yaml' }), { logger: pino({ level: 'silent' }) });
  });

  after(async () => {
    await edge?.close();
    await agent.close();
    alphaOrigin.server.close();
    betaOrigin.server.close();
  });

  test('two tenants are routed by Host, and an unknown host gets 404 with a reason', async () => {
    assert.equal((await get('alpha.test', '/page')).body, 'alpha-origin /page\n');
    assert.equal((await get('beta.test:8080', '/page')).body, 'beta-origin /page\n');
    const unknown = await get('nobody.test', '/');
    assert.equal(unknown.status, 404);
    assert.match(unknown.body, /unknown host "nobody.test"/);
  });

  test('in a tenant without a default origin, a request no route matches answers 404, never stored', async () => {
    assert.equal((await get('gamma.test', '/only/x')).status, 201);
    for (let i = 0; i < 2; i++) {
      const missed = await get('gamma.test', '/elsewhere?q=1');
      assert.equal(missed.status, 404);
      assert.equal(missed.body, 'no route for GET /elsewhere\n');
      assert.equal(missed.headers['cache-control'], 'no-store');
      assert.equal(missed.headers['x-cache'], 'MISS');
      assert.equal(missed.headers['x-delivered'], 'status-404', 'the deliver hook sees it');
    }
  });

  test('a program-generated response is cached: the second request does not enter the VM', async () => {
    const before = await vmCalls('alpha', ALPHA_TOKEN);
    const first = await get('alpha.test', '/gen/item');
    assert.equal(first.status, 201);
    assert.equal(first.headers['x-cache'], 'MISS');
    const second = await get('alpha.test', '/gen/item');
    assert.equal(second.headers['x-cache'], 'HIT');
    assert.equal(second.body, first.body);
    // recv + generate + deliver on the miss; recv + deliver on the hit; generate ran once.
    assert.equal(await vmCalls('alpha', ALPHA_TOKEN), before + 5);
  });

  test('a receive hook passes some URLs, answers others itself, and sets request headers', async () => {
    const pass = await get('alpha.test', '/pass/a');
    assert.equal(pass.headers['x-cache'], 'PASS');
    assert.equal(pass.body, 'alpha-origin /pass/a\n');
    const blocked = await get('alpha.test', '/blocked');
    assert.equal(blocked.status, 403);
    assert.equal(blocked.body, 'blocked by recv\n');
    await get('alpha.test', '/nocache/x');
    assert.equal(alphaOrigin.lastHeaders()['x-recv'], 'seen');
  });

  test('a deliver hook adds a header to every response, hit or miss', async () => {
    assert.equal((await get('alpha.test', '/page')).headers['x-delivered'], 'status-200');
    assert.equal((await get('alpha.test', '/gen/other')).headers['x-delivered'], 'status-201');
  });

  test('the deliver hook runs on what origins and programs answer, and skips the answers the cache makes itself (docs/server.md)', async () => {
    // Runs on: a program's failure answered as a response (413), an origin's or program's answer.
    const big = await request(`${edge.front.url}/m/post`, { method: 'POST', headers: { host: 'alpha.test' }, body: Buffer.alloc(2048, 'x'), dispatcher: agent });
    assert.equal(big.statusCode, 413);
    assert.equal(big.headers['x-delivered'], 'status-413');
    await big.body.text();
    assert.equal((await get('alpha.test', '/m/fine')).headers['x-delivered'], 'status-200');
    await get('alpha.test', '/page'); // stored, for the precondition below
    // Skips: recv's own answer, a failed precondition, only-if-cached without an object, an
    // origin that fails, a program that fails (502/503/504 are the cache's answers for them).
    const skipped = [
      await get('alpha.test', '/blocked'),
      await get('alpha.test', '/page', { headers: { 'if-match': '"nothing-matches"' } }),
      await get('alpha.test', '/never-fetched', { headers: { 'cache-control': 'only-if-cached' } }),
      await get('alpha.test', '/dead/x'),
      await get('alpha.test', '/crash'),
    ];
    assert.deepEqual(skipped.map((r) => r.status), [403, 412, 504, 502, 502]);
    assert.deepEqual(skipped.map((r) => r.headers['x-delivered']), [undefined, undefined, undefined, undefined, undefined]);
    assert.deepEqual(skipped.map((r) => r.headers['x-cache']), ['SYNTH', 'HIT', 'MISS', 'MISS', 'MISS']);
  });

  test("a program calls its tenant's origin and the tenant's key-value store", async () => {
    const fetched = await get('alpha.test', '/fetch');
    assert.equal(fetched.body, 'status=200 len=30 body=alpha-origin /data?from=guest\n\n');
    const a = await get('alpha.test', '/kv/incr?1', { headers: { 'cache-control': 'no-cache' } });
    const b = await get('alpha.test', '/kv/incr?2');
    assert.equal(a.body, 'counter=1 stored=0\n');
    assert.equal(b.body, 'counter=2 stored=0\n');
  });

  test('guest timeout → 504, fault → 502, queue full → 503, and the next request is served normally', async () => {
    const crash = await get('beta.test', '/crash');
    assert.equal(crash.status, 502);
    assert.equal(crash.body, 'program fault\n');
    const slow = get('beta.test', '/loop');
    // Wait until the looping request holds the program's only instance.
    const key = edge.tenants.get('beta')!.programs.get('misbehave')!.key;
    while (edge.pool.inflight(key) === 0) await new Promise((r) => setTimeout(r, 2));
    const full = await get('beta.test', '/m/queued');
    assert.equal(full.status, 503);
    assert.equal(full.body, 'program busy\n');
    const timedOut = await slow;
    assert.equal(timedOut.status, 504);
    assert.equal(timedOut.body, 'program timed out\n');
    const ok = await get('beta.test', '/m/fine');
    assert.equal(ok.status, 200);
    assert.equal(ok.body, 'ok served=0\n');
  });

  test('a program replaced while 200 concurrent requests run fails none of them', async () => {
    const elf = readFileSync(buildGuest('sdk_misbehave'));
    const versionBefore = ((await admin('GET', '/v1/tenants/beta', BETA_TOKEN)).json.programs as Array<{ name: string; version: string }>).find((p) => p.name === 'busy')!.version;
    const load = Array.from({ length: 200 }, (_, i) => get('beta.test', `/busy/${i}`));
    const upload = admin('PUT', '/v1/tenants/beta/programs/busy', BETA_TOKEN, elf);
    const more = Array.from({ length: 200 }, (_, i) => new Promise((r) => setTimeout(r, i)).then(() => get('beta.test', `/busy/late-${i}`)));
    const results = await Promise.all([...load, ...more]);
    const uploaded = await upload;
    assert.equal(uploaded.status, 200, JSON.stringify(uploaded.json));
    assert.notEqual(uploaded.json.version, versionBefore);
    const failed = results.filter((r) => r.status !== 200 || r.body !== 'ok served=0\n');
    assert.deepEqual(failed, []);
  });

  test('a broken upload changes nothing, says why, and uses up no version number', async () => {
    const version = async (): Promise<string> => ((await admin('GET', '/v1/tenants/beta', BETA_TOKEN)).json.programs as Array<{ name: string; version: string }>).find((p) => p.name === 'busy')!.version;
    const before = await version();
    for (const [elf, why] of [
      [Buffer.from('not a program'), /not an ELF executable/],
      [readFileSync(buildGuest('hello', 'dynamic')), /dynamically linked/],
      [readFileSync(buildGuest('hello')), /exited|wait/i],
    ] as const) {
      const r = await admin('PUT', '/v1/tenants/beta/programs/busy', BETA_TOKEN, elf);
      assert.equal(r.status, 422);
      assert.match(String(r.json.error), /^program refused; nothing changed: /);
      assert.match(String(r.json.error), why);
      assert.equal((await get('beta.test', '/busy/after')).body, 'ok served=0\n');
    }
    assert.equal(await version(), before);
    const good = await admin('PUT', '/v1/tenants/beta/programs/busy', BETA_TOKEN, readFileSync(buildGuest('sdk_misbehave')));
    assert.equal(good.status, 200, JSON.stringify(good.json));
    assert.equal(good.json.version, before.replace(/@(\d+)$/, (_, n: string) => `@${Number(n) + 1}`), 'the next version after the last one loaded');
  });

  test("tenant A's token is refused on tenant B's admin routes; the operator sees all tenants", async () => {
    assert.equal((await admin('GET', '/v1/tenants/beta/stats', ALPHA_TOKEN)).status, 403);
    assert.equal((await admin('POST', '/v1/tenants/beta/purge', ALPHA_TOKEN, '{"url":"/x"}')).status, 403);
    assert.equal((await admin('PUT', '/v1/tenants/beta/programs/busy', ALPHA_TOKEN, Buffer.from('x'))).status, 403);
    assert.equal((await admin('GET', '/v1/tenants', ALPHA_TOKEN)).status, 403);
    assert.equal((await admin('GET', '/v1/tenants/alpha/stats', 'wrong-token-0123456789')).status, 401);
    const all = await admin('GET', '/v1/tenants', OPERATOR_TOKEN);
    assert.deepEqual((all.json.tenants as Array<{ name: string }>).map((t) => t.name), ['alpha', 'beta', 'gamma']);
  });

  test('the operator scrapes Prometheus metrics of every tenant and the process; a tenant its own', async () => {
    await get('alpha.test', '/cached-metrics');
    const scrape = await request(`${edge.admin.url}/v1/metrics`, { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` }, dispatcher: agent });
    assert.equal(scrape.statusCode, 200);
    assert.match(String(scrape.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const text = await scrape.body.text();
    assert.match(text, /^# TYPE tinyedge_requests_total counter$/m);
    assert.match(text, /^tinyedge_requests_total\{tenant="alpha"\} [1-9]\d*$/m);
    assert.match(text, /^tinyedge_vm_calls_total\{tenant="alpha"\} [1-9]\d*$/m);
    assert.match(text, /^tinyedge_cache_hits_total\{tenant="beta"\} \d+$/m);
    // Latency as histograms: by tenant, by program, by origin; the +Inf bucket counts them all.
    assert.match(text, /^# TYPE tinyedge_request_duration_seconds histogram$/m);
    const all = Number(/^tinyedge_request_duration_seconds_count\{tenant="alpha"\} (\d+)$/m.exec(text)?.[1]);
    assert.ok(all > 0);
    assert.match(text, new RegExp(`^tinyedge_request_duration_seconds_bucket\\{tenant="alpha",le="\\+Inf"\\} ${all}$`, 'm'));
    assert.match(text, /^tinyedge_request_duration_seconds_bucket\{tenant="alpha",le="0\.001"\} \d+$/m);
    assert.match(text, /^tinyedge_vm_call_duration_seconds_count\{tenant="alpha",program="gen"\} [1-9]\d*$/m);
    assert.match(text, /^tinyedge_origin_fetch_duration_seconds_count\{tenant="alpha",origin="default"\} [1-9]\d*$/m);
    assert.match(text, /^tinyedge_origin_healthy\{tenant="alpha",origin="default"\} 1$/m);
    assert.ok(Number(/^tinyedge_cpu_guest_seconds_total\{tenant="alpha"\} (\S+)$/m.exec(text)?.[1]) > 0);
    assert.ok(Number(/^tinyedge_cpu_host_seconds_total\{tenant="alpha"\} (\S+)$/m.exec(text)?.[1]) > 0);
    assert.doesNotMatch(text, /quantile=/);
    assert.match(text, /^tinyedge_process_cpu_seconds_total \S+$/m);
    // The shared cache as a whole: the three tenants' default 64 MiB each, the object just cached in it.
    const store = (name: string): number => Number(new RegExp(`^tinyedge_cache_store_${name} (\\S+)$`, 'm').exec(text)?.[1]);
    assert.equal(store('budget_bytes'), 3 * 64 * 1024 * 1024);
    assert.equal(store('reserved_bytes'), 3 * 64 * 1024 * 1024);
    assert.ok(store('objects') >= 1 && store('bytes') > 0 && store('bytes') <= store('budget_bytes'));
    assert.ok(store('arena_used_bytes') > 0 && store('arena_used_bytes') <= store('arena_bytes') && store('arena_bytes') <= store('arena_limit_bytes'));
    assert.ok(store('arena_limit_bytes') >= 1.25 * store('reserved_bytes'));
    const stats = (await admin('GET', '/v1/stats', OPERATOR_TOKEN)).json as { store?: { objects: number; maxBytes: number } };
    assert.ok(stats.store !== undefined && stats.store.objects >= 1 && stats.store.maxBytes === 3 * 64 * 1024 * 1024);
    assert.equal((await admin('GET', '/v1/stats', ALPHA_TOKEN)).json.store, undefined, 'the store is every tenant\'s: the operator\'s to see');

    const own = await request(`${edge.admin.url}/v1/metrics`, { headers: { authorization: `Bearer ${ALPHA_TOKEN}` }, dispatcher: agent });
    assert.equal(own.statusCode, 200);
    const mine = await own.body.text();
    assert.match(mine, /^tinyedge_requests_total\{tenant="alpha"\} [1-9]\d*$/m);
    assert.doesNotMatch(mine, /tenant="beta"/);
    assert.doesNotMatch(mine, /tinyedge_process_|tinyedge_cache_store_/);
  });

  test('purge and tag invalidation through the admin API drop cached objects', async () => {
    await get('alpha.test', '/gen/tagged');
    assert.equal((await get('alpha.test', '/gen/tagged')).headers['x-cache'], 'HIT');
    assert.deepEqual((await admin('POST', '/v1/tenants/alpha/purge-tag', ALPHA_TOKEN, '{"tag":"catalog"}')).json, { purged: 3 });
    assert.equal((await get('alpha.test', '/gen/tagged')).headers['x-cache'], 'MISS');
    await get('alpha.test', '/cached-page');
    assert.equal((await admin('POST', '/v1/tenants/alpha/purge', ALPHA_TOKEN, '{"url":"/cached-page"}')).json.purged, 1);
    assert.equal((await get('alpha.test', '/cached-page')).headers['x-cache'], 'MISS');
  });
});
