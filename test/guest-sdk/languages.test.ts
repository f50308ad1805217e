// The C++ SDK (guest/include/tinyedge.hpp) and the Rust SDK (guest/rust) through request VMs, on
// one program per language that takes every path (test/guests/sdk_cpp.cc, test/guests/sdk_rust):
// request accessors, responses, hooks, sub-requests, the key-value store, and a failing handler.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kvm } from '../../src/kvm/kvm.ts';
import { Program } from '../../src/sandbox/program.ts';
import { type HostCalls, type Instance } from '../../src/sandbox/instance.ts';
import type { SandboxRequest } from '../../src/sandbox/types.ts';
import { buildCrate, toolchainPresent } from '../../guest/build.ts';
import { tenantHostCalls } from '../../src/server/host-calls.ts';
import { KvStore } from '../../src/server/kv.ts';
import { buildGuest, ROOT } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const get = (url: string, headers: Array<[string, string]> = []): SandboxRequest => ({ method: 'GET', url, headers: [['Host', 'test'], ...headers], body: new Uint8Array(0) });

const LANGUAGES: Array<{ name: string; toolchain: string; build: () => string }> = [
  { name: 'C++', toolchain: 'g++', build: () => buildGuest('sdk_cpp') },
  { name: 'Rust', toolchain: 'cargo', build: () => buildCrate(join(ROOT, 'test/guests/sdk_rust'), join(ROOT, 'build/guests/rust')) },
];

for (const lang of LANGUAGES) {
  const skip = needsKvm().skip || (toolchainPresent(lang.toolchain) ? false : `${lang.toolchain} is not installed`);
  describe(`the ${lang.name} SDK`, { skip }, () => {
    let kvm: Kvm;
    let program: Program;
    let inst: Instance;
    /** The server's own store (src/server/kv.ts), as `serve` and `dev` offer it. */
    const store = new KvStore(16 * 1024);
    const fetches: string[] = [];
    const host: HostCalls = {
      ...tenantHostCalls(new Map(), store),
      fetch(call) {
        fetches.push(`${call.method} ${call.origin || 'default'} ${call.url} ${JSON.stringify(call.headers)}`);
        return Promise.resolve({ status: 203, headers: [['content-type', 'text/x-origin'], ['x-other', 'y']], body: Buffer.from('origin data') });
      },
    };

    before(() => {
      kvm = new Kvm();
      program = new Program(kvm, readFileSync(lang.build()), { mode: 'sdk', name: `sdk_${lang.name}` });
      inst = program.instance();
    });
    after(() => {
      inst.close();
      program.close();
      kvm.close();
    });

    test('a handler reads method, path, query, headers case-insensitively, a decoded parameter and the body, and state made before serving', async () => {
      const req: SandboxRequest = { method: 'POST', url: '/echo?name=J%C3%BCrgen+B&x=1', headers: [['Host', 'test'], ['x-Test', 'from-client']], body: Buffer.from('posted') };
      const r = await inst.call(req, { host });
      assert.equal(r.status, 200);
      assert.deepEqual(r.headers, [['Content-Type', 'text/plain; charset=utf-8']]);
      assert.equal(r.body.toString(), 'POST /echo query=name=J%C3%BCrgen+B&x=1 x-test=from-client name=Jürgen B body=posted init=yes\n');
    });

    test('a sub-request sends its headers and gets status, headers and a body cut to the buffer it asked for', async () => {
      fetches.length = 0;
      const r = await inst.call(get('/fetch'), { host });
      assert.equal(r.body.toString(), 'status=203 type=text/x-origin body=origi truncated=yes\n');
      assert.equal(fetches.length, 1);
      assert.match(fetches[0]!, /^GET default \/data \[\["X-From","(cpp|rust)"\]\]$/);
    });

    test('the key-value store takes a value larger than the first read buffer, and deletes report what was there', async () => {
      store.delete('big');
      const r = await inst.call(get('/kv'), { host });
      assert.equal(r.body.toString(), 'len=5000 same=yes deleted=yes,no after=absent\n');
    });

    test('increments and compare-and-sets return what the store did, and an increment of a word fails with EINVAL', async () => {
      const r = await inst.call(get('/kv-atomic'), { host });
      assert.equal(r.body.toString(), 'incr=5,3 cas=yes,no absent=yes,no n=30 notnum=22\n');
      assert.equal(Buffer.from(store.get('word')!).toString(), 'v');
    });

    test("a host call's refusal reaches the program as its errno", async () => {
      const full: HostCalls = { kvSet: () => false };
      const r = await inst.call(get('/kv-full'), { host: full });
      assert.equal(r.status, 507);
      assert.match(r.body.toString(), /^errno=28 what=.*No space left on device/);
      // Without a host offering sub-requests (`tinyedge dev`), -ENOSYS.
      const none = inst.handle(get('/fetch'));
      assert.equal(none.status, 502);
      assert.equal(none.body.toString(), 'errno=38\n');
    });

    test('a handler that fails answers 500, uncacheable, with the reason in the log, and the next request is served', async () => {
      const r = await inst.call(get('/fail'), { host });
      assert.equal(r.status, 500);
      assert.equal(r.body.toString(), 'internal error\n');
      assert.equal(r.cache.uncacheable, true);
      assert.ok(r.logs.some((line) => line.includes('no such thing')), r.logs.join('\n'));
      assert.equal((await inst.call(get('/echo'), { host })).status, 200);
    });

    test('cache policy and tags reach the host', async () => {
      const r = await inst.call(get('/cache'), { host });
      assert.deepEqual(r.cache, { ttl: 60, grace: 10, keep: 5, tags: ['a', 'b'], uncacheable: false });
    });

    test('as a recv hook it passes, or rewrites the URL with a header, or lets the request go on', async () => {
      assert.deepEqual((await inst.call(get('/pass'), { phase: 'recv' })).recv, { action: 'pass', url: undefined, setHeaders: [] });
      assert.deepEqual((await inst.call(get('/old/a?b=1'), { phase: 'recv' })).recv, { action: 'lookup', url: '/new/a?b=1', setHeaders: [['X-Recv', lang.name === 'Rust' ? 'rust' : 'cpp']] });
      assert.deepEqual((await inst.call(get('/other'), { phase: 'recv' })).recv, { action: 'lookup', url: undefined, setHeaders: [] });
    });

    test('as a deliver hook it sees the status about to be delivered and sets a header', async () => {
      const r = await inst.call(get('/x'), { phase: 'deliver', response: { status: 404, headers: [['Content-Type', 'text/html']] } });
      assert.deepEqual(r.headers, [['X-Delivered', 'status-404']]);
    });

    test('persistent, it answers a batch with each response whole in its own slot; without live-update callbacks it hands over nothing', async () => {
      const persistent = new Program(kvm, readFileSync(lang.build()), { mode: 'sdk', name: `sdk_${lang.name}`, lifecycle: 'persistent' });
      const p = persistent.instance();
      try {
        const names = ['a', 'bb', 'ccc'];
        const outcomes = await p.callBatch(names.map((n) => ({ req: { ...get(`/echo?name=${n}`), method: 'POST', body: Buffer.from(n) }, options: { host } })));
        assert.deepEqual(outcomes.map((o) => (o.kind === 'answered' ? o.result.body.toString() : o.kind)), names.map((n) => `POST /echo query=name=${n} x-test=(none) name=${n} body=${n} init=yes\n`));
        assert.deepEqual(outcomes.map((o) => (o.kind === 'answered' ? o.result.headers : [])), names.map(() => [['Content-Type', 'text/plain; charset=utf-8']]));
        const live = await p.call(get('/'), { liveUpdate: true });
        assert.equal(live.status, 204);
      } finally {
        p.close();
        persistent.close();
      }
    });
  });
}
