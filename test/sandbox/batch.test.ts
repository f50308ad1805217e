// Batched entries (ABI version 2): a persistent program answers a batch of requests with one exit,
// each request under its own time limit from when its handler starts; one that faults or times
// out fails alone and those after it come back to run again; host calls work mid-batch; a program
// that lies about its batch hurts only its own requests. The program under test counts requests.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { BatchItem, BatchOutcome, CallOptions, HostCalls, Instance } from '../../src/sandbox/instance.ts';
import { readFileSync } from 'node:fs';
import { ProgramPool } from '../../src/sandbox/program-pool.ts';
import type { ProgramOptions, SandboxRequest } from '../../src/sandbox/types.ts';
import { SandboxError } from '../../src/vmm/errors.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';
import { guestPrograms } from '../helpers/programs.ts';

const get = (url: string): SandboxRequest => ({ method: 'GET', url, headers: [['Host', 'test']], body: new Uint8Array(0) });
const items = (urls: string[], options: CallOptions = {}): BatchItem[] => urls.map((url) => ({ req: get(url), options }));
/** An outcome in a word: the answer's count (or body), the failure's kind, or `again`. */
function summary(o: BatchOutcome): string {
  if (o.kind === 'again') return 'again';
  if (o.kind === 'failed') return o.error instanceof SandboxError ? o.error.kind : String(o.error);
  const body = o.result.body.toString();
  return /count=(\d+)/.exec(body)?.[1] ?? body.trim();
}
/** Exits the program caused (the timer's interrupts aside). */
const guestExits = (inst: Instance): number => inst.exits.all - inst.exits.timer;

describe('batched entries', needsKvm(), () => {
  const programs = guestPrograms();
  const open: Instance[] = [];
  let persistent: string;
  before(() => {
    persistent = buildGuest('sdk_persistent');
  });
  after(() => {
    for (const i of open) i.close();
  });
  const instance = (file: string, options: Partial<ProgramOptions> = {}): Instance => {
    const i = programs.load(file, { mode: 'sdk', name: 'batch', timeoutMs: 300, lifecycle: 'persistent', ...options }).instance();
    open.push(i);
    return i;
  };

  test('a batch of 16 requests costs one exit; 16 lone requests cost 16', async () => {
    const inst = instance(persistent);
    await inst.call(get('/'));
    const before = guestExits(inst);
    const outcomes = await inst.callBatch(items(Array.from({ length: 16 }, () => '/')));
    assert.equal(guestExits(inst) - before, 1);
    assert.deepEqual(outcomes.map(summary), Array.from({ length: 16 }, (_, i) => String(i + 2)), 'answered in order, each seeing the state the one before left');
    const alone = guestExits(inst);
    for (let i = 0; i < 16; i++) await inst.call(get('/'));
    assert.equal(guestExits(inst) - alone, 16);
  });

  test('a request that times out inside a batch fails alone: those before stand, those after run again', async () => {
    const inst = instance(persistent, { timeoutMs: 200 });
    const outcomes = await inst.callBatch(items(['/', '/', '/spin', '/', '/']));
    assert.deepEqual(outcomes.map(summary), ['1', '2', 'timeout', 'again', 'again']);
    // The instance was reset: the requests that come back start from the snapshot.
    assert.deepEqual((await inst.callBatch(items(['/', '/']))).map(summary), ['1', '2']);
  });

  test('a fault inside a batch fails that request alone, and resets the instance', async () => {
    const inst = instance(persistent);
    assert.deepEqual((await inst.callBatch(items(['/', '/fault', '/']))).map(summary), ['1', 'fault', 'again']);
    assert.deepEqual((await inst.callBatch(items(['/', '/']))).map(summary), ['1', '2']);
  });

  test('each request has the time limit from when its handler starts, not from the batch\'s start', async () => {
    const inst = instance(persistent, { timeoutMs: 400 });
    // Four handlers of 150 ms: 600 ms for the batch, each well inside 400 ms.
    const outcomes = await inst.callBatch(items(['/sleep?ms=150', '/sleep?ms=150', '/sleep?ms=150', '/sleep?ms=150']));
    assert.deepEqual(outcomes.map(summary), ['1', '2', '3', '4']);
  });

  test('te_reset_after() ends the batch after its response: the rest run again, on the reset instance', async () => {
    const inst = instance(persistent);
    assert.deepEqual((await inst.callBatch(items(['/', '/reset', '/', '/']))).map(summary), ['1', '2', 'again', 'again']);
    assert.deepEqual((await inst.callBatch(items(['/', '/']))).map(summary), ['1', '2']);
  });

  test('resetAfterRequests bounds a batch: it takes no more requests than the bound leaves', async () => {
    const inst = instance(persistent, { resetAfterRequests: 3 });
    assert.deepEqual((await inst.callBatch(items(['/', '/', '/', '/', '/']))).map(summary), ['1', '2', '3', 'again', 'again']);
    assert.deepEqual((await inst.callBatch(items(['/', '/']))).map(summary), ['1', '2']);
  });

  test('host calls mid-batch work as in a lone request, each with its own request\'s host, and logs stay apart', async () => {
    const inst = instance(persistent);
    const host = (value: string): HostCalls => ({ kvGet: async (key) => (key === 'k' ? Buffer.from(value) : undefined) });
    const outcomes = await inst.callBatch([
      { req: get('/kv'), options: { host: host('first') } },
      { req: get('/log'), options: {} },
      { req: get('/kv'), options: { host: host('third') } },
      { req: get('/log'), options: {} },
    ]);
    assert.deepEqual(outcomes.map((o) => (o.kind === 'answered' ? o.result.body.toString() : o.kind)), ['kv=first count=1\n', 'count=2 warm=0 flags=0 kv=0\n', 'kv=third count=3\n', 'count=4 warm=0 flags=0 kv=0\n']);
    assert.deepEqual(outcomes.map((o) => (o.kind === 'answered' ? o.result.logs : [])), [[], ['log 2', 'err 2'], [], ['log 4', 'err 4']]);
  });

  test('an ephemeral program or one of ABI version 1 takes no batch: the first request runs, the rest come back', async () => {
    const eph = instance(persistent, { lifecycle: 'ephemeral' });
    assert.deepEqual((await eph.callBatch(items(['/', '/', '/']))).map(summary), ['1', 'again', 'again']);
    const v1 = instance(buildGuest('sdk_abi_unversioned'));
    assert.deepEqual((await v1.callBatch(items(['/', '/']))).map(summary), ['unversioned, told version 1', 'again']);
  });

  test('a program that lies about its batch hurts only its own requests, and the host stays well', async () => {
    const inst = instance(buildGuest('hostile_batch'), { timeoutMs: 150 });
    const run = async (first: string): Promise<string[]> => (await inst.callBatch(items([first, '/', '/', '/']))).map(summary);
    assert.deepEqual(await run('/'), ['ok 0', 'ok 1', 'ok 2', 'ok 3']);
    // Answered none, or more than it was given, or a WAIT naming another batch: the running request fails as a bad response.
    for (const lie of ['/answered-zero', '/answered-huge', '/wrong-wait']) {
      assert.deepEqual(await run(lie), ['ok 0', 'ok 1', 'ok 2', 'bad-response'], lie);
    }
    // `current` never goes back: the host keeps timing the last request it saw start.
    const t0 = performance.now();
    assert.deepEqual(await run('/current-back'), ['ok 0', 'ok 1', 'ok 2', 'timeout']);
    assert.ok(performance.now() - t0 < 1000, 'the batch ended within its bound');
    // `current` past the batch is ignored; pointers the program overwrote are not the host's.
    assert.deepEqual(await run('/current-huge'), ['ok 0', 'ok 1', 'ok 2', 'ok 3']);
    assert.deepEqual(await run('/pointers'), ['ok 0', 'ok 1', 'ok 2', 'ok 3']);
    // One slot pointing outside memory fails that request alone.
    assert.deepEqual(await run('/bad-slot'), ['ok 0', 'bad-response', 'ok 2', 'ok 3']);
    assert.deepEqual(await run('/'), ['ok 0', 'ok 1', 'ok 2', 'ok 3']);
  });
});

describe('batches in the program pool', needsKvm(), () => {
  let pool: ProgramPool;
  let elf: Buffer;
  before(async () => {
    pool = await ProgramPool.start();
    elf = readFileSync(buildGuest('sdk_persistent'));
  });
  after(async () => {
    await pool.close();
  });
  const options = { mode: 'sdk' as const, name: 'batch', lifecycle: 'persistent' as const, concurrency: 1, queueTimeoutMs: 5000 };
  const countOf = (r: { body: Buffer }): number => Number(/count=(\d+)/.exec(r.body.toString())?.[1]);

  test('requests that wait together for the instance go in together: 17 requests, 2 exits', async () => {
    await pool.load('t/b@1', elf, options);
    await pool.call('t/b@1', get('/'));
    // The instance is free again once its answer has gone out (an immediate later).
    await new Promise((r) => setImmediate(r));
    const before = pool.counters('t/b@1');
    // The first finds the instance free and runs at once; the 16 others wait for it and go in as one batch.
    const results = await Promise.all(Array.from({ length: 17 }, () => pool.call('t/b@1', get('/'))));
    const after = pool.counters('t/b@1');
    assert.deepEqual(results.map(countOf), Array.from({ length: 17 }, (_, i) => i + 2));
    assert.equal((after.exits - after.timerExits) - (before.exits - before.timerExits), 2);
    assert.equal(after.batches - before.batches, 1);
  });

  test('a request that times out in a batch fails alone; the others are answered', async () => {
    await pool.load('t/b@2', elf, { ...options, timeoutMs: 200 });
    await pool.call('t/b@2', get('/'));
    const settled = await Promise.allSettled(['/', '/', '/', '/spin', '/', '/', '/'].map((url) => pool.call('t/b@2', get(url))));
    assert.deepEqual(settled.map((s) => s.status), ['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled']);
    const failed = settled[3] as PromiseRejectedResult;
    assert.ok(failed.reason instanceof SandboxError && failed.reason.kind === 'timeout');
    // Those before it saw the state grow; those after it ran again on the reset instance.
    assert.deepEqual(settled.filter((s) => s.status === 'fulfilled').map((s) => countOf(s.value)), [2, 3, 4, 1, 2, 3]);
  });

  test('batches that ran past the slice make the next ones smaller, never so small that batching stops', async () => {
    // Its own pool, with a 1 ms slice: a batch of requests that each spin 5 ms always runs past it.
    const small = await ProgramPool.start({ sliceMs: 1 });
    try {
      await small.load('t/b@5', elf, { ...options, maxBatch: 4 });
      const round = async (url: string, n: number): Promise<void> => {
        await Promise.all(Array.from({ length: n }, () => small.call('t/b@5', get(url))));
        await new Promise((r) => setImmediate(r));
      };
      // The first of each round runs alone; the others wait and go in together: 4, then 2.
      await round('/sleep?ms=5', 5);
      await round('/sleep?ms=5', 3);
      await round('/sleep?ms=5', 3);
      const before = small.counters('t/b@5').batches;
      await round('/', 5);
      assert.equal(small.counters('t/b@5').batches - before, 2, 'the four waiting requests went in as two batches of two: smaller, and still together');
    } finally {
      await small.close();
    }
  });

  test('batches slowed by the host, not by their guest, keep their size', async () => {
    // The time goes to host calls: each request's key-value read takes 30 ms, a batch's 120 ms,
    // past the 20 ms slice (long enough that the guest's own runs never fill one, however loaded
    // the machine).
    const small = await ProgramPool.start({ sliceMs: 20 });
    try {
      await small.load('t/b@6', elf, { ...options, maxBatch: 4 });
      const slow: HostCalls = { kvGet: async () => new Promise((r) => setTimeout(() => r(undefined), 30)) };
      const round = async (url: string, host?: HostCalls): Promise<void> => {
        await Promise.all(Array.from({ length: 5 }, () => small.call('t/b@6', get(url), { host })));
        await new Promise((r) => setImmediate(r));
      };
      // Each round: the first runs alone, the four others wait and go in together.
      for (let i = 0; i < 3; i++) await round('/kv', slow);
      const before = small.counters('t/b@6');
      await round('/');
      const after = small.counters('t/b@6');
      assert.equal(after.batches - before.batches, 1, 'the four waiting requests went in as one batch, not two of two');
      assert.equal(after.exits - after.timerExits - (before.exits - before.timerExits), 2);
    } finally {
      await small.close();
    }
  });

  test('maxBatch 1: a persistent program\'s waiting requests each get their own entry, state kept', async () => {
    await pool.load('t/b@4', elf, { ...options, maxBatch: 1 });
    const before = pool.counters('t/b@4');
    const results = await Promise.all(Array.from({ length: 6 }, () => pool.call('t/b@4', get('/'))));
    const after = pool.counters('t/b@4');
    assert.deepEqual(results.map(countOf), [1, 2, 3, 4, 5, 6]);
    assert.equal(after.batches, 0);
    assert.equal((after.exits - after.timerExits) - (before.exits - before.timerExits), 6);
  });

  test('an ephemeral program\'s waiting requests each get their own entry, and a reset between', async () => {
    await pool.load('t/b@3', elf, { ...options, lifecycle: 'ephemeral' });
    const results = await Promise.all(Array.from({ length: 5 }, () => pool.call('t/b@3', get('/'))));
    assert.deepEqual(results.map(countOf), [1, 1, 1, 1, 1]);
    assert.equal(pool.counters('t/b@3').batches, 0);
  });
});
