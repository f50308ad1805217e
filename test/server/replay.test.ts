// Replayable failures end to end: a program faults or times out under `serve` after host calls,
// clock reads and getrandom; its bundle comes from the admin API (tenant-scoped, a bounded ring);
// `tinyedge replay` (the built CLI, in a process of its own) reruns it against the same file and
// shows the same failure, refuses another file and bad bundles, and reports a divergence.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { request } from 'undici';
import { parseConfig } from '../../src/server/config.ts';
import { EdgeServer } from '../../src/server/server.ts';
import type { FailureBundle } from '../../src/server/failure-bundles.ts';
import { buildGuest, ROOT } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const BIN = join(ROOT, 'bin/tinyedge.js');
const OP = 'operator-token-0123456789';
const A = 'tenant-a-token-0123456789';
const B = 'tenant-b-token-0123456789';
const C = 'tenant-c-token-0123456789';

interface Summary {
  id: string;
  tenant: string;
  url: string;
  error: { kind: string; message: string };
}

/** Runs the built CLI; its exit status and output, whatever the status. */
function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

describe('replayable failures: bundles from serve, replayed by tinyedge replay', needsKvm(), () => {
  let edge: EdgeServer;
  let origin: Server;
  const hanging: ServerResponse[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'tinyedge-replay-'));
  const program = buildGuest('sdk_replay');
  const cgiProgram = buildGuest('cgi_replay');

  const send = async (host: string, path: string): Promise<number> => {
    const r = await request(`${edge.front.url}${path}`, { headers: { host, connection: 'close' } });
    await r.body.text();
    return r.statusCode;
  };
  const admin = async (path: string, token: string): Promise<{ status: number; body: string }> => {
    const r = await request(`${edge.admin.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
    return { status: r.statusCode, body: await r.body.text() };
  };
  const list = async (path: string, token: string): Promise<Summary[]> => {
    const r = await admin(path, token);
    assert.equal(r.status, 200, r.body);
    return (JSON.parse(r.body) as { failures: Summary[] }).failures;
  };
  /** The bundle of the failure of `tenant` at `url` (it reaches the main thread from whichever shard ran it). */
  const bundleOf = async (tenant: string, url: string, token: string): Promise<{ summary: Summary; text: string }> => {
    for (;;) {
      const found = (await list(`/v1/tenants/${tenant}/failures`, token)).find((s) => s.url === url);
      if (found !== undefined) {
        const r = await admin(`/v1/tenants/${tenant}/failures/${found.id}`, token);
        assert.equal(r.status, 200, r.body);
        return { summary: found, text: r.body };
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const save = (name: string, text: string): string => {
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  };

  before(async () => {
    origin = createServer((req, res) => {
      if (req.url === '/hang') {
        hanging.push(res);
        return;
      }
      if (req.url === '/big') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(Buffer.alloc(300 * 1024, 0x62));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end('s33d from the origin\n');
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const port = (origin.address() as { port: number }).port;
    const tenant = (name: string, token: string): string => `
  - name: ${name}
    hosts: [${name}.test]
    token: ${token}
    origins: [{ name: default, url: "http://127.0.0.1:${port}" }]
    # A time limit no request of this program nears under load, but for those that spin or wait on purpose.
    programs:
      - { name: flaky, file: ${program}, routes: [{ prefix: / }], memory: 16MiB, timeout: 1s, env: { GREETING: hi } }`;
    const yaml = `
server:
  listen: 127.0.0.1:0
  admin: 127.0.0.1:0
  operatorToken: ${OP}
  # Two shards: bundles reach the main thread's store from either.
  shards: 2
  failureBundles: 3
tenants:${tenant('a', A)}${tenant('b', B)}${tenant('c', C)}
  - name: d
    hosts: [d.test]
    token: tenant-d-token-0123456789
    origins: [{ name: default, url: "http://127.0.0.1:${port}" }]
    programs:
      - { name: keeper, file: ${program}, routes: [{ prefix: / }], memory: 16MiB, timeout: 1s, lifecycle: persistent }
  - name: e
    hosts: [e.test]
    token: tenant-e-token-0123456789
    programs:
      - { name: cgi, file: ${cgiProgram}, mode: cgi, routes: [{ prefix: / }], memory: 16MiB }
`;
    edge = await EdgeServer.start(parseConfig(yaml, { file: join(dir, 'config.yaml') }), { logger: pino({ level: 'silent' }) });
    assert.equal(await send('a.test', '/set'), 200);
  });

  after(async () => {
    for (const res of hanging) res.destroy();
    await edge?.close();
    origin.closeAllConnections();
    await new Promise<void>((r) => origin.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  test('a fault after host calls, clock and getrandom replays to the very same fault', async () => {
    assert.equal(await send('a.test', '/fault'), 502);
    const { summary, text } = await bundleOf('a', '/fault', A);
    assert.equal(summary.error.kind, 'fault');
    const bundle = JSON.parse(text) as FailureBundle;
    assert.equal(bundle.tenant, 'a');
    assert.equal(bundle.program, 'flaky');
    assert.equal(bundle.persistent, false);
    assert.deepEqual(bundle.settings.env, ['GREETING=hi']);
    assert.equal(bundle.settings.timeoutMs, 1000);
    assert.equal(bundle.request.method, 'GET');
    assert.ok(bundle.request.headers.some(([n, v]) => n.toLowerCase() === 'host' && v === 'a.test'));
    const steps = bundle.answers!.steps.map((s) => (s.step === 'host' ? `${s.call} ${s.what}` : s.step));
    assert.deepEqual(steps, ['kv-get seed', 'clock', 'fetch GET /seed', 'random']);
    assert.equal(bundle.answers!.truncated, false);
    // The fault's page comes from a hash of every answer: only a replay given all of them hits it.
    assert.match(bundle.error.message, /page fault at 0x[0-9a-f]+/);

    const r = await cli(['replay', save('fault.json', text), '--program', program]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.ok(r.stdout.includes(`recorded: fault: ${bundle.error.message}`), r.stdout);
    assert.ok(r.stdout.includes(`replayed: fault: ${bundle.error.message}`), r.stdout);
    assert.match(r.stdout, /the replay shows the recorded failure/);
  });

  test('--trace prints the replayed system calls and hypercalls to stderr', async () => {
    const { text } = await bundleOf('a', '/fault', A);
    const r = await cli(['replay', save('trace.json', text), '--program', program, '--trace']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /getrandom/);
    assert.match(r.stderr, /clock_gettime/);
  });

  test('a timeout replays to the same timeout, spinning only because the answers are the recorded ones', async () => {
    assert.equal(await send('a.test', '/spin'), 504);
    const { text } = await bundleOf('a', '/spin', A);
    const bundle = JSON.parse(text) as FailureBundle;
    assert.deepEqual(bundle.error, { kind: 'timeout', message: 'program ran past its 1000 ms time limit' });
    const r = await cli(['replay', save('spin.json', text), '--program', program]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.ok(r.stdout.includes('replayed: timeout: program ran past its 1000 ms time limit'), r.stdout);

    // Another store value: the program answers instead of spinning, and the replay says so.
    const other = JSON.parse(text) as FailureBundle;
    const kv = other.answers!.steps[0]!;
    assert.ok(kv.step === 'host' && kv.call === 'kv-get');
    kv.answer = { value: Buffer.from('v2').toString('base64') };
    const changed = await cli(['replay', save('spin-v2.json', JSON.stringify(other)), '--program', program]);
    assert.equal(changed.code, 3, changed.stdout + changed.stderr);
    assert.match(changed.stdout, /replayed: the program answered 200 .*the recorded failure did not happen/);
  });

  test('a timeout waiting on a sub-request replays as the same wait, with no origin asked', async () => {
    assert.equal(await send('a.test', '/wait'), 504);
    const { text } = await bundleOf('a', '/wait', A);
    const bundle = JSON.parse(text) as FailureBundle;
    assert.equal(bundle.error.message, 'program ran past its 1000 ms time limit (waiting on a host call)');
    const last = bundle.answers!.steps.at(-1)!;
    assert.ok(last.step === 'host' && last.what === 'GET /hang' && last.answer === undefined, JSON.stringify(last));
    const waitingBefore = hanging.length;
    const r = await cli(['replay', save('wait.json', text), '--program', program]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.ok(r.stdout.includes(`replayed: timeout: ${bundle.error.message}`), r.stdout);
    assert.equal(hanging.length, waitingBefore, 'the replay reached no origin');
  });

  test('a replay whose program asks for something else reports the step where it diverged', async () => {
    const { text } = await bundleOf('a', '/fault', A);
    const bundle = JSON.parse(text) as FailureBundle;
    bundle.answers!.steps = bundle.answers!.steps.slice(0, 1);
    bundle.request.url = '/wait';
    const r = await cli(['replay', save('diverged.json', JSON.stringify(bundle)), '--program', program]);
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.match(r.stdout, /replayed: replay diverged at step 1: the program asked for clock 0 \(a clock step\), past the recorded answers/);

    const swapped = JSON.parse(text) as FailureBundle;
    const [kv, clock] = swapped.answers!.steps;
    swapped.answers!.steps[0] = clock!;
    swapped.answers!.steps[1] = kv!;
    const s = await cli(['replay', save('swapped.json', JSON.stringify(swapped)), '--program', program]);
    assert.equal(s.code, 3, s.stdout + s.stderr);
    assert.match(s.stdout, /replay diverged at step 0: the program asked for kv-get seed, the recorded run for clock 0/);
  });

  test('replay refuses another program file, naming both hashes', async () => {
    const { text } = await bundleOf('a', '/fault', A);
    const bundle = JSON.parse(text) as FailureBundle;
    const other = buildGuest('hello');
    const r = await cli(['replay', save('other.json', text), '--program', other]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.ok(r.stderr.includes(bundle.programSha256), r.stderr);
    assert.match(r.stderr, /is not the program that failed: its SHA-256 is [0-9a-f]{64}, the bundle's program \(a\/flaky@\d+\) has [0-9a-f]{64}/);
  });

  test('replay refuses malformed, foreign, huge and hostile bundle files with a clear error', async () => {
    const { text } = await bundleOf('a', '/fault', A);
    const refused = async (name: string, content: string | Buffer, why: RegExp): Promise<void> => {
      const r = await cli(['replay', save(name, typeof content === 'string' ? content : content.toString('latin1')), '--program', program]);
      assert.equal(r.code, 2, `${name}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, why);
      assert.doesNotMatch(r.stderr, /at \w+ \(|node:internal/, 'no stack trace');
    };
    await refused('not-json.json', '{"format": "tinyedge-failure-bundle", ', /is not JSON/);
    await refused('array.json', '[1, 2, 3]', /is not a valid failure bundle, at the top level/);
    await refused('future.json', text.replace('"version": 1', '"version": 7'), /format version 7; this tinyedge reads version 1/);
    const bad = JSON.parse(text) as { answers: { steps: unknown[]; random: string } };
    bad.answers.steps[1] = { step: 'clock', clock: 0, sec: 'soon', nsec: 0 };
    await refused('bad-step.json', JSON.stringify(bad), /at answers\.steps\[1\]\.sec/);
    const badRandom = JSON.parse(text) as { answers: { random: string } };
    badRandom.answers.random = Buffer.alloc(4096).toString('base64');
    await refused('bad-random.json', JSON.stringify(badRandom), /at answers\.random: expected 32 bytes/);
    await refused('huge.json', Buffer.alloc(9 * 1024 * 1024, 0x20), /larger than 8388608: not a failure bundle/);
    const r = await cli(['replay', join(dir, 'missing.json'), '--program', program]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /cannot read .*missing\.json/);
  });

  test('a call with more steps than the journal keeps has a truncated bundle, and its replay says where it ran out', async () => {
    assert.equal(await send('b.test', '/many'), 502);
    const { text } = await bundleOf('b', '/many', B);
    const bundle = JSON.parse(text) as FailureBundle;
    assert.equal(bundle.answers!.truncated, true);
    assert.equal(bundle.answers!.steps.length, 512);
    // kv-get, the clock read every path makes, 600 more: 602 steps.
    assert.equal(bundle.answers!.stepsSeen, 602);
    const r = await cli(['replay', save('many.json', text), '--program', program]);
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.match(r.stdout, /truncated: the call took 602/);
    assert.match(r.stdout, /replay diverged at step 512: .*the bundle's answers were truncated after 512 steps/);
  });

  test('a request body over the bound is cut in the bundle, which says so', async () => {
    const body = Buffer.alloc(70 * 1024, 0x61);
    const r = await request(`${edge.front.url}/fault?big`, { method: 'POST', headers: { host: 'b.test', connection: 'close' }, body });
    await r.body.text();
    assert.equal(r.statusCode, 502);
    const { text } = await bundleOf('b', '/fault?big', B);
    const bundle = JSON.parse(text) as FailureBundle;
    assert.equal(bundle.request.method, 'POST');
    assert.equal(bundle.request.bodyBytes, body.length);
    assert.equal(bundle.request.bodyTruncated, true);
    assert.equal(Buffer.from(bundle.request.body, 'base64').length, 64 * 1024);
    const replayed = await cli(['replay', save('big.json', text), '--program', program]);
    // This program does not read its body: the cut does not change its fault.
    assert.equal(replayed.code, 1, replayed.stdout + replayed.stderr);
    assert.match(replayed.stdout, /note: the request body was cut to 65536 of its 71680 bytes/);
  });

  test('what a hostile guest does cannot grow the journal: a bad pointer takes no step, bytes past the bound are not kept', async () => {
    assert.equal(await send('b.test', '/hostile'), 502);
    const { text } = await bundleOf('b', '/hostile', B);
    const bundle = JSON.parse(text) as FailureBundle;
    assert.match(bundle.error.message, /page fault at 0x18 /);
    assert.deepEqual(bundle.answers!.steps.map((s) => s.step), ['host', 'clock']);
    assert.equal(bundle.answers!.truncated, true);
    assert.equal(bundle.answers!.stepsSeen, 3);
    assert.ok(Buffer.byteLength(text) < 16 * 1024, `${Buffer.byteLength(text)} bytes`);
  });

  test('a sub-request answer over the journal\'s byte bound ends the recorded answers before it', async () => {
    assert.equal(await send('d.test', '/bigfetch'), 502);
    const { text } = await bundleOf('d', '/bigfetch', OP);
    const bundle = JSON.parse(text) as FailureBundle;
    assert.deepEqual(bundle.answers!.steps.map((s) => s.step), ['host', 'clock']);
    assert.equal(bundle.answers!.truncated, true);
    assert.ok(Buffer.byteLength(text) < 16 * 1024, `${Buffer.byteLength(text)} bytes`);
    const r = await cli(['replay', save('bigfetch.json', text), '--program', program]);
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.match(r.stdout, /replay diverged at step 2: the program asked for fetch GET \/big \(a host step\), past the recorded answers: the bundle's answers were truncated after 2 steps/);
  });

  test('replay --from fetches the bundle from the admin API with the token, which must reach its tenant', async () => {
    const { summary } = await bundleOf('a', '/fault', A);
    const url = `${edge.admin.url}/v1/tenants/a/failures/${summary.id}`;
    const run = (args: string[], token: string | undefined): Promise<{ code: number; stdout: string; stderr: string }> =>
      new Promise((resolve) => {
        const env = { ...process.env };
        delete env.TINYEDGE_TOKEN;
        if (token !== undefined) env.TINYEDGE_TOKEN = token;
        execFile(process.execPath, [BIN, ...args], { env }, (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stdout, stderr }));
      });
    const ok = await run(['replay', '--from', url, '--program', program], A);
    assert.equal(ok.code, 1, ok.stdout + ok.stderr);
    assert.ok(ok.stdout.includes(`replayed: fault: ${summary.error.message}`), ok.stdout);
    const other = await run(['replay', '--from', url, '--program', program], B);
    assert.equal(other.code, 2);
    assert.match(other.stderr, /403 token not valid for tenant a/);
    const none = await run(['replay', '--from', url, '--program', program], undefined);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no token for --from/);
    const neither = await run(['replay', '--program', program], A);
    assert.equal(neither.code, 2);
    assert.match(neither.stderr, /give a bundle file or --from URL/);
  });

  test('a persistent program\'s bundle says its earlier state is not in it; the replay runs on a fresh instance', async () => {
    assert.equal(await send('d.test', '/set'), 200);
    assert.equal(await send('d.test', '/fault'), 502);
    const { text } = await bundleOf('d', '/fault', OP);
    const bundle = JSON.parse(text) as FailureBundle;
    assert.equal(bundle.persistent, true);
    assert.equal(bundle.settings.lifecycle, 'persistent');
    const r = await cli(['replay', save('persistent.json', text), '--program', program]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /note: a persistent program: state from earlier requests is not in the bundle/);
  });

  test('a CGI program\'s fault replays too', async () => {
    assert.equal(await send('e.test', '/crash'), 502);
    const { text } = await bundleOf('e', '/crash', OP);
    const bundle = JSON.parse(text) as FailureBundle;
    assert.equal(bundle.settings.mode, 'cgi');
    assert.equal(bundle.answers!.random, undefined);
    const r = await cli(['replay', save('cgi.json', text), '--program', cgiProgram]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.ok(r.stdout.includes(`replayed: fault: ${bundle.error.message}`), r.stdout);
  });

  test("a tenant's token sees only its own bundles; the operator's sees every tenant's", async () => {
    assert.equal(await send('b.test', '/fault'), 502);
    const mine = await bundleOf('b', '/fault', B);
    assert.equal(mine.summary.tenant, 'b');
    assert.equal((await admin('/v1/tenants/a/failures', B)).status, 403);
    const a = await list('/v1/tenants/a/failures', A);
    assert.equal((await admin(`/v1/tenants/a/failures/${a[0]!.id}`, B)).status, 403);
    // B's own route does not serve A's bundle by its id either.
    assert.equal((await admin(`/v1/tenants/b/failures/${a[0]!.id}`, B)).status, 404);
    assert.equal((await admin('/v1/failures', B)).status, 403);
    assert.ok((await list('/v1/tenants/b/failures', B)).every((s) => s.tenant === 'b'));
    const all = await list('/v1/failures', OP);
    assert.ok(all.some((s) => s.tenant === 'a') && all.some((s) => s.tenant === 'b'));
    assert.equal((await admin('/v1/tenants/a/failures', 'no-such-token-0123456789')).status, 401);
  });

  test('each tenant keeps only its newest bundles (failureBundles: 3)', async () => {
    // Five failures: at most five bundles a second per tenant and shard are made, so none is skipped.
    for (let i = 1; i <= 5; i++) assert.equal(await send('c.test', `/fault?n=${i}`), 502);
    for (;;) {
      const urls = (await list('/v1/tenants/c/failures', C)).map((s) => s.url).sort();
      if (urls.includes('/fault?n=5') && urls.length === 3) break;
      assert.ok(urls.length <= 3, `the ring holds at most 3: ${urls.join(' ')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const kept = (await list('/v1/tenants/c/failures', C)).map((s) => s.url).sort();
    // Shards send their bundles independently: the newest three to arrive, which include the last.
    assert.equal(kept.length, 3);
    assert.equal((await admin('/v1/tenants/c/failures/no-such-id', C)).status, 404);
  });
});
