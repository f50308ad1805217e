// The C SDK (guest/include/tinyedge.h) as programs use it, through request VMs: one state across
// a program's files, the ABI version a program declares, the warm-up flag, and the key-value
// functions' errors as the host gives them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Program } from '../../src/sandbox/program.ts';
import { type HostCalls } from '../../src/sandbox/instance.ts';
import { ProgramPool } from '../../src/sandbox/program-pool.ts';
import type { SandboxRequest } from '../../src/sandbox/types.ts';
import { SandboxError } from '../../src/vmm/errors.ts';
import { tenantHostCalls } from '../../src/server/host-calls.ts';
import { KvStore } from '../../src/server/kv.ts';
import { buildGuest, type GuestVariant, hasCompiler } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';
import { guestPrograms } from '../helpers/programs.ts';

const EINVAL = 22, ENOSPC = 28, ERANGE = 34;
const get = (url: string): SandboxRequest => ({ method: 'GET', url, headers: [['Host', 'test']], body: new Uint8Array(0) });

describe('the C SDK', needsKvm(), () => {
  const programs = guestPrograms();
  const load = (name: string, variant: GuestVariant = 'glibc'): Program => programs.load(buildGuest(name, variant), { mode: 'sdk', name });

  for (const variant of ['glibc', 'pie', 'musl'] as const) {
    test(`a program whose handler is registered in one file and whose loop runs in another answers with that handler (${variant})`, { skip: hasCompiler(variant) ? false : `no compiler for ${variant}` }, () => {
      const inst = load('sdk_two_files', variant).instance();
      for (const path of ['/a', '/b']) {
        const r = inst.handle(get(path));
        assert.equal(r.status, 200);
        assert.equal(r.body.toString(), `handled ${path} in handler.c\n`);
        assert.deepEqual(r.headers, [['Content-Type', 'text/plain'], ['X-File', 'handler.c']]);
        assert.equal(r.cache.ttl, 30);
      }
      inst.close();
    });
  }

  test('a program built for another ABI version fails to load with an error naming both versions', () => {
    assert.throws(() => load('sdk_abi_future'), (err: unknown) =>
      err instanceof SandboxError && err.kind === 'program' && /built for SDK ABI version 3, but this host accepts versions 1, 2/.test(err.message));
  });

  test('a program that declares no version, as the SDK built them before, loads as version 1', () => {
    const inst = load('sdk_abi_unversioned').instance();
    assert.equal(inst.handle(get('/')).body.toString(), 'unversioned, told version 1\n');
    inst.close();
  });

  test('a request carries the warm-up flag only when the host makes it as a warm-up', async () => {
    const inst = load('sdk_warmup').instance();
    assert.equal((await inst.call(get('/'), { warmup: true })).body.toString(), 'warmup=1\n');
    assert.equal((await inst.call(get('/'))).body.toString(), 'warmup=0\n');
    assert.equal(inst.handle(get('/')).body.toString(), 'warmup=0\n');
    inst.close();
  });

  describe('key-value functions return the error the host gives', () => {
    const store = new Map<string, Uint8Array>();
    const host: HostCalls = {
      kvGet: (key) => store.get(key),
      kvSet: (key, value) => {
        if (value.length > 100) return false;
        store.set(key, value);
        return true;
      },
      kvDelete: (key) => store.delete(key),
    };
    const failing: HostCalls = {
      kvGet: () => Promise.reject(new Error('store down')),
      kvSet: () => Promise.reject(new Error('store down')),
      kvDelete: () => Promise.reject(new Error('store down')),
    };
    let program: Program;
    before(() => {
      program = load('sdk_kv_errors');
    });
    const call = async (url: string, calls: HostCalls | null = host): Promise<string> => {
      const inst = program.instance();
      try {
        return (calls ? await inst.call(get(url), { host: calls }) : inst.handle(get(url))).body.toString();
      } finally {
        inst.close();
      }
    };

    test('a stored value comes back with its length, and a buffer too small gets the full length', async () => {
      store.clear();
      assert.equal(await call('/set?key=k&len=10'), 'r=0\n');
      assert.equal(await call('/get?key=k'), 'r=10 value=vvvvvvvvvv\n');
      assert.equal(await call('/get?key=k&cap=4'), 'r=10 value=vvvv\n');
    });

    test('an absent key is -ENOENT for get and delete, and a deleted one is gone', async () => {
      store.clear();
      assert.equal(await call('/get?key=nope'), 'r=-2 value=\n');
      assert.equal(await call('/delete?key=nope'), 'r=-2\n');
      assert.equal(await call('/set?key=k'), 'r=0\n');
      assert.equal(await call('/delete?key=k'), 'r=0\n');
      assert.equal(await call('/get?key=k'), 'r=-2 value=\n');
    });

    test('over the quota is -ENOSPC, a value over 1 MiB or a key over 1024 bytes -E2BIG, an empty key -EINVAL', async () => {
      assert.equal(await call('/set?key=k&len=101'), 'r=-28\n');
      assert.equal(await call('/set?key=k&len=1048577'), 'r=-7\n');
      assert.equal(await call('/set?long=1025'), 'r=-7\n');
      assert.equal(await call('/get?long=1025'), 'r=-7 value=\n');
      assert.equal(await call('/delete?long=0'), 'r=-22\n');
      assert.equal(await call('/set?long=1024'), 'r=0\n');
    });

    test('a store that fails is -EIO, and no store at all -ENOSYS', async () => {
      assert.equal(await call('/get?key=k', failing), 'r=-5 value=\n');
      assert.equal(await call('/set?key=k', failing), 'r=-5\n');
      assert.equal(await call('/delete?key=k', failing), 'r=-5\n');
      assert.equal(await call('/get?key=k', null), 'r=-38 value=\n');
    });
  });
});

describe('the C SDK\'s atomic key-value functions, on the server\'s store', needsKvm(), () => {
  const programs = guestPrograms();
  const store = new KvStore(1000);
  const host = tenantHostCalls(new Map(), store);
  let program: Program;
  before(() => {
    program = programs.load(buildGuest('sdk_kv_errors'), { mode: 'sdk', name: 'sdk_kv_errors' });
  });
  const call = async (url: string): Promise<string> => {
    const inst = program.instance();
    try {
      return (await inst.call(get(url), { host })).body.toString();
    } finally {
      inst.close();
    }
  };

  test('an increment starts an absent key at 0, adds any signed delta and stores decimal text that get reads', async () => {
    assert.equal(await call('/incr?key=c'), 'r=0 value=1\n');
    assert.equal(await call('/incr?key=c&delta=41'), 'r=0 value=42\n');
    assert.equal(await call('/incr?key=c&delta=-50'), 'r=0 value=-8\n');
    assert.equal(await call('/get?key=c'), 'r=2 value=-8\n');
    assert.equal(await call('/set?key=c&len=0'), 'r=0\n');
    assert.equal(await call('/incr?key=c'), `r=${-EINVAL} value=0\n`, 'an empty value is not an integer');
  });

  test('an increment past the signed 64-bit range is -ERANGE and changes nothing; a value that is not an integer is -EINVAL', async () => {
    assert.equal(await call('/incr?key=big&delta=9223372036854775807'), 'r=0 value=9223372036854775807\n');
    assert.equal(await call('/incr?key=big'), `r=${-ERANGE} value=0\n`);
    assert.equal(await call('/get?key=big'), 'r=19 value=9223372036854775807\n');
    assert.equal(await call('/incr?key=small&delta=-9223372036854775808'), 'r=0 value=-9223372036854775808\n');
    assert.equal(await call('/incr?key=small&delta=-1'), `r=${-ERANGE} value=0\n`);
    assert.equal(await call('/set?key=text&len=3'), 'r=0\n');
    assert.equal(await call('/incr?key=text'), `r=${-EINVAL} value=0\n`);
    assert.equal(await call('/get?key=text'), 'r=3 value=vvv\n');
  });

  test('an increment whose longer text, or a compare-and-set whose value, would exceed the quota is -ENOSPC', async () => {
    const tight = new KvStore(Buffer.byteLength('q') + 1);
    const inst = program.instance();
    try {
      const r = async (url: string): Promise<string> => (await inst.call(get(url), { host: tenantHostCalls(new Map(), tight) })).body.toString();
      assert.equal(await r('/incr?key=q&delta=9'), 'r=0 value=9\n');
      assert.equal(await r('/incr?key=q'), `r=${-ENOSPC} value=0\n`);
      assert.equal(await r('/cas?key=q&expect=9&value=10'), `r=${-ENOSPC}\n`);
      assert.equal(Buffer.from(tight.get('q')!).toString(), '9');
    } finally {
      inst.close();
    }
  });

  test('compare-and-set stores only over the expected value (or an absent key) and says whether it did', async () => {
    assert.equal(await call('/cas?key=s&value=one'), 'r=1\n', 'absent, as expected');
    assert.equal(await call('/cas?key=s&value=two'), 'r=0\n', 'present now');
    assert.equal(await call('/cas?key=s&expect=two&value=three'), 'r=0\n');
    assert.equal(await call('/get?key=s'), 'r=3 value=one\n');
    assert.equal(await call('/cas?key=s&expect=one&value=two'), 'r=1\n');
    assert.equal(await call('/get?key=s'), 'r=3 value=two\n');
    assert.equal(await call('/cas?key=nope&expect=&value=x'), 'r=0\n', 'an empty expected value is not absence');
    assert.equal(await call('/cas?key=s&expect=two&value=' + 'x'.repeat(255)), 'r=1\n');
    assert.equal(await call('/get?key=s&cap=300'), `r=255 value=${'x'.repeat(255)}\n`);
  });
});

describe('the warm-up flag on a program loaded through the program pool', needsKvm(), () => {
  let pool: ProgramPool;
  before(async () => {
    pool = await ProgramPool.start();
  });
  after(async () => {
    await pool.close();
  });

  test('the load check request carries the flag, and requests after it do not', async () => {
    const stored: string[] = [];
    const host: HostCalls = {
      kvSet: (key, value) => {
        stored.push(`${key}=${Buffer.from(value).toString()}`);
        return true;
      },
    };
    await pool.load('t/warm@1', readFileSync(buildGuest('sdk_warmup')), { mode: 'sdk', name: 'warm', concurrency: 1, queueTimeoutMs: 1000 }, { req: get('/'), host });
    assert.deepEqual(stored, ['warmed-up=yes']);
    const r = await pool.call('t/warm@1', get('/'), { host });
    assert.equal(r.body.toString(), 'warmup=0\n');
    assert.deepEqual(stored, ['warmed-up=yes']);
    pool.unload('t/warm@1');
  });
});
