// Hostile sizes and buffers in host calls and responses (issue 9, defects 1 and 7): every length a
// guest hands the host is bounded before the host decodes or copies it, an argument over its bound
// is an errno (or a failed request for a response), and the instance keeps serving.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Kvm } from '../../src/kvm/kvm.ts';
import { MAX_HEADERS_BYTES, MAX_LOG_LINE_BYTES, MAX_LOG_LINES, MAX_URL_BYTES } from '../../src/sandbox/abi.ts';
import { MAX_KV_VALUE_BYTES } from '../../src/sandbox/abi-kv.ts';
import { Program } from '../../src/sandbox/program.ts';
import { type HostCalls, type Instance } from '../../src/sandbox/instance.ts';
import type { SandboxRequest } from '../../src/sandbox/types.ts';
import { SandboxError } from '../../src/vmm/errors.ts';
import { KvStore } from '../../src/server/kv.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const get = (url: string): SandboxRequest => ({ method: 'GET', url, headers: [['Host', 'test']], body: new Uint8Array(0) });
const EFAULT = 14, EINVAL = 22, E2BIG = 7, ENAMETOOLONG = 36, EMSGSIZE = 90;
const MiB = 1024 * 1024;

/** Host memory the test process holds: a decoded 40 MiB guest string would show here (or kill it). */
const hostBytes = (): number => {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

/** Loads `guest` and gives each test an instance of it. */
function loaded(guest: string): { inst: () => Instance; close: () => void } {
  let kvm: Kvm | undefined;
  let program: Program | undefined;
  let instance: Instance | undefined;
  before(() => {
    kvm = new Kvm();
    program = new Program(kvm, readFileSync(buildGuest(guest)), { mode: 'sdk', name: guest, timeoutMs: 10_000 });
    instance = program.instance();
  });
  const close = (): void => {
    instance?.close();
    program?.close();
    kvm?.close();
  };
  after(close);
  return { inst: () => instance!, close };
}

describe('hostile sub-requests (FETCH)', needsKvm(), () => {
  const vm = loaded('hostile_fetch');
  const fetched: Array<{ url: string; headers: number; body: number }> = [];
  const host: HostCalls = {
    async fetch(call) {
      fetched.push({ url: call.url, headers: call.headers.length, body: call.body.length });
      return { status: 200, headers: [['content-type', 'text/plain']], body: Buffer.from('origin data') };
    },
  };
  const fine = async (): Promise<void> => assert.equal((await vm.inst().call(get('/'), { host })).body.toString(), 'fine\n');

  test("the issue's repro: 256 headers all pointing at one 40 MiB buffer are refused before the host decodes them", async () => {
    const before = hostBytes();
    const r = await vm.inst().call(get('/headers-40m'), { host });
    const grown = hostBytes() - before;
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), `fetch=${-EMSGSIZE}\n`);
    assert.ok(grown < 8 * MiB, `the host grew by ${(grown / MiB).toFixed(1)} MiB`);
    assert.deepEqual(fetched, []);
    await fine();
  });

  test('every sub-request size over its bound is an errno, and no sub-request is made', async () => {
    for (const [path, errno] of [
      ['/origin-long', ENAMETOOLONG], ['/method-long', EMSGSIZE], ['/url-long', EMSGSIZE], ['/count-257', EMSGSIZE],
      ['/count-huge', EMSGSIZE], ['/header-long', EMSGSIZE], ['/headers-total', EMSGSIZE], ['/body-long', EMSGSIZE], ['/len-huge', EMSGSIZE],
    ] as const) {
      assert.equal((await vm.inst().call(get(path), { host })).body.toString(), `fetch=${-errno}\n`, path);
      await fine();
    }
    assert.deepEqual(fetched, []);
  });

  test('a URL of exactly the bound goes through', async () => {
    assert.equal((await vm.inst().call(get('/url-max'), { host })).body.toString(), 'fetch=200\n');
    assert.deepEqual(fetched.splice(0), [{ url: `/${'a'.repeat(MAX_URL_BYTES - 1)}`, headers: 0, body: 0 }]);
  });

  test('bad result buffers are EFAULT for the guest, not a failed request, and the next fetch works', async () => {
    for (const path of ['/result-body', '/result-headers', '/result-cap', '/struct-end']) {
      const r = await vm.inst().call(get(path), { host });
      assert.equal(r.status, 200, path);
      assert.equal(r.body.toString(), `fetch=${-EFAULT}\n`, path);
    }
    // Refused when the call is made: the origin never sees a sub-request whose answer has nowhere to go.
    assert.deepEqual(fetched, []);
    assert.equal((await vm.inst().call(get('/ok'), { host })).body.toString(), 'fetch=200 len=11 body=origin data\n');
  });
});

describe('hostile key-value and log calls', needsKvm(), () => {
  const vm = loaded('hostile_kv_log');
  const stored: Array<[string, number]> = [];
  const host: HostCalls = {
    kvGet: () => Buffer.from('value'),
    kvSet: (key, value) => {
      stored.push([key, value.length]);
      return true;
    },
    kvDelete: () => true,
  };
  const call = async (path: string): Promise<string> => (await vm.inst().call(get(path), { host })).body.toString();

  test('keys and values over their bounds are E2BIG (an empty key EINVAL) and never reach the store', async () => {
    for (const [path, errno] of [
      ['/key-empty', EINVAL], ['/key-long', E2BIG], ['/key-huge', E2BIG], ['/value-long', E2BIG], ['/value-40m', E2BIG], ['/value-huge', E2BIG],
    ] as const) {
      const before = hostBytes();
      assert.equal(await call(path), `r=${-errno}\n`, path);
      assert.ok(hostBytes() - before < 8 * MiB, path);
      assert.equal(await call('/'), 'fine\n');
    }
    assert.equal(stored.length, 0);
    assert.equal(await call('/key-max'), 'r=0\n');
    assert.equal(await call('/value-max'), 'r=0\n');
    assert.deepEqual(stored.map(([k, n]) => [k.length, n]), [[1024, 1], [1, MAX_KV_VALUE_BYTES]]);
  });

  test('a bad KV_GET buffer is EFAULT; KV_DELETE ignores the value fields', async () => {
    assert.equal(await call('/get-bad-buf'), `r=${-EFAULT}\n`);
    assert.equal(await call('/get-huge-cap'), `r=${-EFAULT}\n`);
    assert.equal(await call('/delete-junk'), 'r=0\n');
    assert.equal(await call('/'), 'fine\n');
  });

  test('a huge log length keeps one line of the bound; floods of log calls and stderr lines keep a bounded number', async () => {
    const huge = await vm.inst().call(get('/log-huge'), { host });
    assert.equal(huge.body.toString(), 'r=0\n');
    assert.deepEqual(huge.logs, ['a'.repeat(MAX_LOG_LINE_BYTES)]);
    for (const path of ['/log-many', '/stderr-many']) {
      const r = await vm.inst().call(get(path), { host });
      assert.match(r.body.toString(), /^r=\d+\n$/, path);
      assert.equal(r.logs.length, MAX_LOG_LINES, path);
    }
    assert.equal(await call('/'), 'fine\n');
  });
});

describe('hostile key-value increments and compare-and-sets', needsKvm(), () => {
  const vm = loaded('hostile_kv_atomics');
  const store = new KvStore(64 * MiB);
  const reached: string[] = [];
  const host: HostCalls = {
    kvIncrement: (key, delta) => {
      reached.push(`incr ${key}`);
      return store.increment(key, delta);
    },
    kvCompareAndSet: (key, expected, value) => {
      reached.push(`cas ${key} ${value.length}`);
      return store.compareAndSet(key, expected, value);
    },
  };
  const call = async (path: string): Promise<string> => (await vm.inst().call(get(path), { host })).body.toString();

  test('bad pointers are EFAULT, a value_cap other than 8 EINVAL, a huge key E2BIG, and none reaches the store', async () => {
    for (const [path, errno] of [
      ['/incr-struct-bad', EFAULT], ['/incr-value-bad', EFAULT], ['/incr-readonly', EFAULT],
      ['/incr-cap-0', EINVAL], ['/incr-cap-4', EINVAL], ['/incr-cap-16', EINVAL], ['/incr-cap-huge', EINVAL], ['/incr-key-huge', E2BIG],
    ] as const) {
      assert.equal(await call(path), `r=${-errno}\n`, path);
      assert.equal(await call('/'), 'fine\n');
    }
    assert.deepEqual(reached, []);
    assert.equal(store.get('n'), undefined, 'an increment whose result has nowhere to go changes nothing');
    assert.equal(await call('/incr-ok'), 'r=0 value=1\n');
    assert.equal(await call('/incr-ok'), 'r=0 value=2\n');
  });

  test('compare-and-set: bad pointers are EFAULT, sizes over the bound E2BIG, unknown flags EINVAL, and none reaches the store', async () => {
    reached.length = 0;
    for (const [path, errno] of [
      ['/cas-struct-bad', EFAULT], ['/cas-expected-bad', EFAULT], ['/cas-value-bad', EFAULT],
      ['/cas-expected-huge', E2BIG], ['/cas-value-huge', E2BIG], ['/cas-value-long', E2BIG], ['/cas-value-40m', E2BIG],
      ['/cas-flags-2', EINVAL], ['/cas-flags-high', EINVAL],
    ] as const) {
      const before = hostBytes();
      assert.equal(await call(path), `r=${-errno}\n`, path);
      assert.ok(hostBytes() - before < 8 * MiB, path);
      assert.equal(await call('/'), 'fine\n');
    }
    assert.deepEqual(reached, []);
  });

  test('compare-and-set: "absent" does not read the expected value, and a value of exactly the bound goes through', async () => {
    store.delete('k');
    assert.equal(await call('/cas-absent-junk'), 'r=1\n');
    assert.equal(await call('/cas-absent-junk'), 'r=0\n', 'the key is present now');
    store.delete('k');
    assert.equal(await call('/cas-value-max'), 'r=1\n');
    assert.equal(store.get('k')?.length, MAX_KV_VALUE_BYTES);
  });
});

describe('hostile sizes in the response', needsKvm(), () => {
  const vm = loaded('hostile_response');
  const badResponse = (pattern: RegExp) => (err: unknown): boolean => err instanceof SandboxError && err.kind === 'bad-response' && pattern.test(err.message);

  test('header counts, header sizes, tags and rewritten URLs over their bounds fail the request; the host does not grow', async () => {
    for (const [path, phase, message] of [
      ['/count-257', 'generate', /257 headers \(at most 256\)/],
      ['/count-huge', 'generate', /4294967295 headers \(at most 256\)/],
      ['/headers-40m', 'generate', /header 0 of 83886080 bytes \(at most 16384\)/],
      ['/header-long', 'generate', /header 0 of 16385 bytes \(at most 16384\)/],
      ['/headers-total', 'generate', new RegExp(`headers of more than ${MAX_HEADERS_BYTES} bytes`)],
      ['/tags-40m', 'generate', /cache tags of 41943040 bytes \(at most 16384\)/],
      ['/tags-long', 'generate', /cache tags of 16385 bytes \(at most 16384\)/],
      ['/tags-many', 'generate', /1025 cache tags \(at most 1024\)/],
      ['/url-40m', 'recv', /rewritten URL of 41943040 bytes \(at most 8192\)/],
      ['/url-long', 'recv', /rewritten URL of 8193 bytes \(at most 8192\)/],
    ] as const) {
      const before = hostBytes();
      await assert.rejects(vm.inst().call(get(path), { phase }), badResponse(message), path);
      assert.ok(hostBytes() - before < 8 * MiB, path);
      assert.equal((await vm.inst().call(get('/'))).body.toString(), 'fine\n');
    }
  });

  test('sizes at their bounds are accepted', async () => {
    const headers = await vm.inst().call(get('/headers-max'));
    assert.equal(headers.headers.length, 4);
    assert.equal(headers.headers.reduce((n, [a, b]) => n + a.length + b.length, 0), MAX_HEADERS_BYTES);
    assert.equal((await vm.inst().call(get('/tags-max'))).cache.tags.length, 1024);
    assert.equal((await vm.inst().call(get('/url-max'), { phase: 'recv' })).recv?.url?.length, MAX_URL_BYTES);
  });
});
