// The cache engine over shared storage (src/cache/shared-storage.ts), as the shards of `serve` use
// it: two caches of one namespace (two shards, here on one thread; test/server/shards.test.ts
// runs real shard threads) see one set of objects — an object either fetched is a hit on the
// other, and purges, tag purges, bans and hit-for-miss markers made through one hold for both. A
// body being written to a slow client stays intact while its record is purged and its memory
// is wanted for new objects. A body one cache is still fetching streams to the other's clients
// as it arrives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { SharedStorage } from '../../src/cache/index.ts';
import { get as getAny, startOrigin, startProxy, until, type Reply, type TestProxy } from './helpers.ts';

/** A request for site.test, as every shard of `serve` sees the same Host. */
const get = (base: string, path: string): Promise<Reply> => getAny(base, path, { host: 'site.test' });

/** Two caches of namespace `site` in one shared storage: shard A and shard B. */
async function twoShards(origin: Parameters<typeof startProxy>[0], maxBytes = 16 * 2 ** 20): Promise<[TestProxy, TestProxy]> {
  const storage = SharedStorage.create(maxBytes);
  const a = await startProxy(origin, { storage, namespace: 'site' });
  const b = await startProxy(origin, { storage, namespace: 'site' });
  return [a, b];
}

test('an object fetched through one cache is a hit on the other; a purge through either holds for both', async () => {
  const origin = await startOrigin((req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=600', 'surrogate-key': `all ${req.url!.slice(1)}` });
    res.end(`body of ${req.url}`);
  });
  const [a, b] = await twoShards(origin);
  assert.equal((await get(a.url, '/x')).headers['x-cache'], 'MISS');
  const hit = await get(b.url, '/x');
  assert.equal(hit.headers['x-cache'], 'HIT');
  assert.equal(hit.body, 'body of /x');
  assert.equal(origin.requests.length, 1);
  assert.equal(b.cache.purge('http://site.test/x'), 1);
  assert.equal((await get(a.url, '/x')).headers['x-cache'], 'MISS');
  assert.equal(b.cache.purgeTag('x'), 1);
  assert.equal((await get(b.url, '/x')).headers['x-cache'], 'MISS');
  assert.equal((await get(a.url, '/x')).headers['x-cache'], 'HIT');
  assert.equal(a.cache.stats().objects, 1);
  assert.equal(b.cache.stats().objects, 1);
  await Promise.all([a.close(), b.close(), origin.close()]);
});

test('a ban added to both caches drops an object either of them stored, at lookup and by the lurker', async () => {
  const origin = await startOrigin((req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=600', 'content-type': req.url!.endsWith('.png') ? 'image/png' : 'text/plain' });
    res.end('x');
  });
  const [a, b] = await twoShards(origin);
  await get(a.url, '/img/1.png');
  await get(a.url, '/doc');
  // serve adds a ban to every shard: the same list, in the same order.
  for (const c of [a, b]) c.cache.ban('obj.http.content-type ~ png');
  b.cache.lurk();
  assert.equal(b.cache.stats().objects, 1);
  assert.equal((await get(a.url, '/img/1.png')).headers['x-cache'], 'MISS');
  assert.equal((await get(b.url, '/doc')).headers['x-cache'], 'HIT');
  for (const c of [a, b]) c.cache.ban('req.url ~ ^/doc');
  assert.equal((await get(a.url, '/doc')).headers['x-cache'], 'MISS');
  assert.equal((await get(b.url, '/doc')).headers['x-cache'], 'HIT');
  await Promise.all([a.close(), b.close(), origin.close()]);
});

test('a hit-for-miss marker made by one cache sends the other straight to the origin', async () => {
  const origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'cache-control': 'private' });
    res.end('mine');
  });
  const [a, b] = await twoShards(origin);
  await get(a.url, '/p');
  await get(b.url, '/p');
  assert.equal(b.cache.stats().hitForMiss, 1);
  assert.equal(b.cache.stats().objects, 0);
  await Promise.all([a.close(), b.close(), origin.close()]);
});

test('a body a slow client is still reading stays intact while its record is purged and its memory reused', async () => {
  const BIG = 4 * 2 ** 20;
  const origin = await startOrigin((req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=600', 'content-length': String(BIG) });
    res.end(Buffer.alloc(BIG, req.url!.charCodeAt(1)));
  });
  // Room for two such bodies: every new one needs the memory of an old one.
  const [a, b] = await twoShards(origin, 2 * BIG + 2 ** 20);
  await get(a.url, '/a');
  const received: Buffer[] = [];
  let paused = true;
  const done = new Promise<Buffer>((resolve, reject) => {
    const req = httpRequest(`${a.url}/a`, { agent: false, headers: { host: 'site.test' } }, (res) => {
      assert.equal(res.headers['x-cache'], 'HIT');
      res.pause();
      res.on('data', (c: Buffer) => received.push(c));
      res.on('end', () => resolve(Buffer.concat(received)));
      res.on('error', reject);
      const resume = setInterval(() => { if (!paused) { clearInterval(resume); res.resume(); } }, 10);
    });
    req.on('error', reject);
    req.end();
  });
  // Let the server hand its write to the socket, then free the record and fill the store anew.
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(b.cache.purge('/a'), 1);
  // A's sweep lets go of the objects it made of records gone: only the response still holds /a.
  a.cache.lurk();
  for (const p of ['/b', '/c', '/d', '/e']) await get(b.url, p);
  paused = false;
  const body = await done;
  assert.equal(body.length, BIG);
  assert.ok(body.every((x) => x === 'a'.charCodeAt(0)), 'every byte is the one that was stored');
  await Promise.all([a.close(), b.close(), origin.close()]);
});

test('the quota holds for both caches together', async () => {
  const origin = await startOrigin((req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=600' });
    res.end(Buffer.alloc(10_000, req.url!.length));
  });
  const storage = SharedStorage.create(2 ** 20);
  const a = await startProxy(origin, { storage, namespace: 'small', namespaceMaxBytes: 50_000 });
  const b = await startProxy(origin, { storage, namespace: 'small', namespaceMaxBytes: 50_000 });
  for (let i = 0; i < 10; i++) await get(i % 2 === 0 ? a.url : b.url, `/o/${i}`);
  const stats = a.cache.stats();
  assert.ok(stats.bytes <= 50_000, `${stats.bytes} bytes`);
  assert.equal(stats.objects, 4);
  assert.equal(b.cache.stats().objects, 4);
  assert.equal((await get(a.url, '/o/9')).headers['x-cache'], 'HIT');
  assert.equal((await get(b.url, '/o/0')).headers['x-cache'], 'MISS');
  await Promise.all([a.close(), b.close(), origin.close()]);
});

/** The head and the chunks of a response as they arrive, and how it ended. */
function stream(url: string): { head: Promise<IncomingMessage>; chunks: Buffer[]; first: Promise<Buffer>; end: Promise<'end' | 'error'>; left: boolean; leave(): void } {
  const chunks: Buffer[] = [];
  let leave = (): void => {};
  let firstChunk!: (b: Buffer) => void;
  const first = new Promise<Buffer>((r) => { firstChunk = r; });
  let ended!: (how: 'end' | 'error') => void;
  const end = new Promise<'end' | 'error'>((r) => { ended = r; });
  const head = new Promise<IncomingMessage>((resolve, reject) => {
    const req = httpRequest(url, { agent: false, headers: { host: 'site.test' } }, (res) => {
      resolve(res);
      res.on('data', (c: Buffer) => { if (chunks.push(c) === 1) firstChunk(c); });
      res.on('end', () => ended('end'));
      res.on('error', () => ended('error'));
      res.on('aborted', () => ended('error'));
    });
    req.on('error', (err) => { reject(err); ended('error'); });
    req.end();
    // A reset, not a FIN: the front keeps a half-closed connection's answer going.
    leave = () => { req.socket?.resetAndDestroy(); };
  });
  const out = { head, chunks, first, end, left: false, leave: () => { out.left = true; leave(); } };
  return out;
}

/** The 200 000-byte body the slow origins send: 100 000 bytes of 1, then 100 000 of 2. */
function assertHalves(chunks: Buffer[]): void {
  const body = Buffer.concat(chunks);
  assert.equal(body.length, 200_000);
  assert.ok(body.subarray(0, 100_000).every((x) => x === 1) && body.subarray(100_000).every((x) => x === 2));
}

/** Both ways an origin sends a body: with its length, or chunked (its length known only at its end). */
const LENGTHS = [
  { name: 'known length', head: { 'content-length': '200000' } as Record<string, string> },
  { name: 'unknown length', head: {} as Record<string, string> },
];

/** The head fields that say how long a body is: its length, or chunked. */
function framing(res: IncomingMessage): [string | undefined, string | undefined] {
  return [res.headers['content-length'], res.headers['transfer-encoding']];
}

/** Once every response has let go of it, the store holds nothing and every block is free. */
async function assertReleased(storage: SharedStorage): Promise<void> {
  const ns = storage.namespace('site');
  ns.clear();
  // A write frees the blocks unpinned since the last one; responses let go as they close.
  await until(() => ns.bytes === 0 && storage.store.globalStats().arenaUsedBytes === 0, 5000, 'the store emptied');
  assert.equal(storage.store.globalStats().objects, 0);
}

for (const length of LENGTHS) {
  test(`${length.name}: a body one cache is still fetching streams to the other as it arrives, from one origin fetch`, async () => {
    let finish!: () => void;
    const gate = new Promise<void>((r) => { finish = r; });
    const origin = await startOrigin((_req, res) => {
      res.writeHead(200, { 'cache-control': 'max-age=600', ...length.head });
      res.write(Buffer.alloc(100_000, 1));
      void gate.then(() => res.end(Buffer.alloc(100_000, 2)));
    });
    const storage = SharedStorage.create(16 * 2 ** 20);
    const a = await startProxy(origin, { storage, namespace: 'site' });
    const b = await startProxy(origin, { storage, namespace: 'site' });
    const first = stream(`${a.url}/slow`);
    await first.first;
    const second = stream(`${b.url}/slow`);
    // B has the head and the first half while the origin still holds the second back.
    assert.deepEqual(framing(await second.head), framing(await first.head));
    assert.equal((await second.first)[0], 1);
    assert.equal(b.cache.stats().coalesced, 1);
    finish();
    assert.deepEqual(await Promise.all([first.end, second.end]), ['end', 'end']);
    for (const r of [first, second]) assertHalves(r.chunks);
    assert.equal(origin.requests.length, 1);
    const hit = await get(b.url, '/slow');
    assert.deepEqual([hit.headers['x-cache'], hit.headers['content-length']], ['HIT', '200000']);
    assertHalves([hit.raw]);
    await assertReleased(storage);
    await Promise.all([a.close(), b.close(), origin.close()]);
  });

  test(`${length.name}: when the fetch being followed breaks, the follower sees its body break too, and the next request fetches again`, async () => {
    let breakIt!: () => void;
    const gate = new Promise<void>((r) => { breakIt = r; });
    const origin = await startOrigin((req, res) => {
      res.writeHead(200, { 'cache-control': 'max-age=600', ...length.head });
      res.write(Buffer.alloc(100_000, 1));
      if (origin.requests.length === 1) void gate.then(() => req.socket.destroy());
      else res.end(Buffer.alloc(100_000, 2));
    });
    const storage = SharedStorage.create(16 * 2 ** 20);
    const a = await startProxy(origin, { storage, namespace: 'site' });
    const b = await startProxy(origin, { storage, namespace: 'site' });
    const first = stream(`${a.url}/breaks`);
    await first.first;
    const second = stream(`${b.url}/breaks`);
    await second.first;
    breakIt();
    assert.deepEqual(await Promise.all([first.end, second.end]), ['error', 'error']);
    for (const r of [first, second]) {
      const got = Buffer.concat(r.chunks);
      assert.ok(got.length < 200_000 && got.every((x) => x === 1), 'what came before the break, and nothing else');
    }
    const again = await get(b.url, '/breaks');
    assertHalves([again.raw]);
    assert.equal(origin.requests.length, 2);
    await assertReleased(storage);
    await Promise.all([a.close(), b.close(), origin.close()]);
  });

  test(`${length.name}: a purge while one cache is still fetching: the other cache's follower still gets the whole body, and the next request fetches again`, async () => {
    let finish!: () => void;
    const gate = new Promise<void>((r) => { finish = r; });
    const origin = await startOrigin((req, res) => {
      res.writeHead(200, { 'cache-control': 'max-age=600', 'surrogate-key': req.url!.slice(1), ...length.head });
      res.write(Buffer.alloc(100_000, 1));
      void gate.then(() => res.end(Buffer.alloc(100_000, 2)));
    });
    const storage = SharedStorage.create(16 * 2 ** 20);
    const a = await startProxy(origin, { storage, namespace: 'site' });
    const b = await startProxy(origin, { storage, namespace: 'site' });
    for (const [i, purge] of [() => b.cache.purge('http://site.test/p0'), () => a.cache.purgeTag('p1')].entries()) {
      const first = stream(`${a.url}/p${i}`);
      await first.first;
      const second = stream(`${b.url}/p${i}`);
      await second.first;
      assert.equal(purge(), 1, 'the record being filled is what the purge removes');
      finish();
      assert.deepEqual(await Promise.all([first.end, second.end]), ['end', 'end']);
      for (const r of [first, second]) assertHalves(r.chunks);
      // The purge holds: nothing of the fetch is kept, and the next request goes to the origin.
      const before = origin.requests.length;
      assert.equal((await get(b.url, `/p${i}`)).headers['x-cache'], 'MISS');
      assert.equal(origin.requests.length, before + 1);
    }
    await assertReleased(storage);
    await Promise.all([a.close(), b.close(), origin.close()]);
  });
}

test('unknown length past maxObjectBytes: the follower still gets the whole body, nothing is stored, and the key goes hit-for-miss', async () => {
  // Each half goes once every client has all that came before: the follower reads as fast as the test lets the origin send.
  const clients: Array<ReturnType<typeof stream>> = [];
  const received = (n: number): Promise<void> => until(() => clients.length === 2 && clients.every((c) => Buffer.concat(c.chunks).length >= n), 10_000, `${n} bytes at every client`);
  const origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=600' });
    res.write(Buffer.alloc(100_000, 1));
    if (origin.requests.length > 1) { res.end(Buffer.alloc(100_000, 2)); return; }
    void received(100_000).then(() => {
      res.write(Buffer.alloc(50_000, 2));
      return received(150_000);
    }).then(() => res.end(Buffer.alloc(50_000, 2)));
  });
  const storage = SharedStorage.create(16 * 2 ** 20);
  const a = await startProxy(origin, { storage, namespace: 'site', maxObjectBytes: 120_000 });
  const b = await startProxy(origin, { storage, namespace: 'site', maxObjectBytes: 120_000 });
  clients.push(stream(`${a.url}/big`));
  await clients[0]!.first;
  clients.push(stream(`${b.url}/big`));
  assert.deepEqual(await Promise.all(clients.map((c) => c.end)), ['end', 'end']);
  for (const c of clients) assertHalves(c.chunks);
  assert.equal(origin.requests.length, 1);
  assert.equal(b.cache.stats().coalesced, 1, 'the follower followed the fetch of the other cache');
  const next = await get(b.url, '/big');
  assert.equal(next.headers['x-cache'], 'MISS');
  assertHalves([next.raw]);
  assert.equal(origin.requests.length, 2);
  assert.deepEqual([b.cache.stats().objects, b.cache.stats().hitForMiss], [0, 1], 'sent to the origin by the marker the fetch left');
  await assertReleased(storage);
  await Promise.all([a.close(), b.close(), origin.close()]);
});

/**
 * The origin of the tests below: /big is 100 000 bytes of 1, then 50 000 of 2 once every client
 * has the first, then the rest once `more` resolves (in one chunk, or in chunks of 10 000 for as
 * long as anyone reads); /barrier answers at once.
 */
async function bigOrigin(clients: ReadonlyArray<ReturnType<typeof stream>>, more: Promise<void>, rest: 'one chunk' | 'until closed'): Promise<Awaited<ReturnType<typeof startOrigin>> & { closedEarly: Promise<boolean> }> {
  const received = (n: number): Promise<void> => until(() => clients.length === 2 && clients.every((c) => Buffer.concat(c.chunks).length >= n), 10_000, `${n} bytes at every client`);
  let closed!: (early: boolean) => void;
  const closedEarly = new Promise<boolean>((r) => { closed = r; });
  const origin = await startOrigin((req, res) => {
    if (req.url === '/barrier') { res.end('barrier'); return; }
    res.writeHead(200, { 'cache-control': 'max-age=600' });
    res.on('close', () => closed(!res.writableFinished));
    res.write(Buffer.alloc(100_000, 1));
    void received(100_000).then(() => {
      res.write(Buffer.alloc(50_000, 2));
      return received(150_000);
    }).then(() => more).then(async () => {
      if (rest === 'one chunk') { res.end(Buffer.alloc(50_000, 2)); return; }
      // Each chunk once the clients still there have the one before (a follower on this thread
      // must not fall a ring behind). Bounded: a fetch nobody stops ends here, and the test sees
      // it was not stopped.
      for (let sent = 150_000; !res.destroyed && sent < 64 * 2 ** 20; sent += 10_000) {
        await until(() => res.destroyed || clients.every((c) => c.left || Buffer.concat(c.chunks).length >= sent), 10_000, `${sent} bytes at every client still there`);
        await new Promise<void>((r) => res.write(Buffer.alloc(10_000, 2), () => r()));
      }
      res.end();
    });
  });
  return Object.assign(origin, { closedEarly });
}

/** A request on `proxy` that goes to the origin: once it is answered, `proxy` has handled every reset that reached it before. */
async function barrier(proxy: TestProxy): Promise<void> {
  assert.equal((await get(proxy.url, '/barrier')).body, 'barrier');
}

/**
 * Two caches of one store, each with a client of /big, a body of unknown length past their
 * largest object: cache A's client fetched it, B's follows. A's client leaves (a reset), and once
 * A has seen it the origin sends the rest (`rest`, as `bigOrigin` says).
 */
async function fetcherLeft(rest: 'one chunk' | 'until closed'): Promise<{ origin: Awaited<ReturnType<typeof bigOrigin>>; storage: SharedStorage; a: TestProxy; b: TestProxy; follower: ReturnType<typeof stream> }> {
  const clients: Array<ReturnType<typeof stream>> = [];
  let more!: () => void;
  const origin = await bigOrigin(clients, new Promise<void>((r) => { more = r; }), rest);
  const storage = SharedStorage.create(16 * 2 ** 20);
  const a = await startProxy(origin, { storage, namespace: 'site', maxObjectBytes: 120_000 });
  const b = await startProxy(origin, { storage, namespace: 'site', maxObjectBytes: 120_000 });
  clients.push(stream(`${a.url}/big`));
  await clients[0]!.first;
  clients.push(stream(`${b.url}/big`));
  await until(() => clients.every((c) => Buffer.concat(c.chunks).length >= 150_000), 10_000, 'both clients past the limit');
  clients[0]!.leave();
  await barrier(a);
  more();
  return { origin, storage, a, b, follower: clients[1]! };
}

test('unknown length past maxObjectBytes: when every client of the fetching cache leaves, the other cache\'s follower still gets the whole body from that one fetch', async () => {
  const { origin, storage, a, b, follower } = await fetcherLeft('one chunk');
  assert.equal(await follower.end, 'end');
  assertHalves(follower.chunks);
  assert.equal(await origin.closedEarly, false, 'the origin sent its whole answer');
  assert.equal(origin.requests.filter((r) => r.url === '/big').length, 1);
  await assertReleased(storage);
  await Promise.all([a.close(), b.close(), origin.close()]);
});

test('unknown length past maxObjectBytes: once the other cache\'s follower leaves too, the fetch stops', async () => {
  const { origin, storage, a, b, follower } = await fetcherLeft('until closed');
  // The follower still streams from the one fetch; then it leaves too.
  await until(() => Buffer.concat(follower.chunks).length >= 200_000, 10_000, 'the follower past 200 000 bytes');
  follower.leave();
  assert.equal(await origin.closedEarly, true, 'the fetch was stopped before the origin\'s answer ended');
  await assertReleased(storage);
  await Promise.all([a.close(), b.close(), origin.close()]);
});
