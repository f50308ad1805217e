// SO_REUSEPORT listening sockets as the shards use them: one socket per worker thread on one
// port, each handed to a node:http server with `server.listen({ fd })`, the kernel spreading
// new connections over them; what fails, and how, when the port or the address cannot be had;
// and that the port is free again once the servers close.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { get } from 'node:http';
import { type AddressInfo, createServer, type Server } from 'node:net';
import { networkInterfaces } from 'node:os';
import { Worker } from 'node:worker_threads';
import { startFront } from '../../src/http/front.ts';
import { closeSocket, type ListenSocket, ListenSocketError, openReusePortSocket } from '../../src/http/listen-socket.ts';

const WORKER = new URL('../helpers/fd-server-worker.mjs', import.meta.url);
/** With 40 connections, the chance that the kernel's hash gives one of two sockets none is 2^-39. */
const CONNECTIONS = 40;
const NO_IPV6_LOOPBACK = Object.values(networkInterfaces()).flat().some((i) => i?.address === '::1')
  ? false
  : '::1 is not configured on this machine';

interface Shards {
  readonly port: number;
  readonly workers: Worker[];
  /** Closes every worker's server (and so its socket), then ends the workers. */
  close(): Promise<void>;
}

/** Opens `count` sockets on one port (the first on port 0) and serves each in its own worker. */
async function startShards(host: string, count: number): Promise<Shards> {
  const first = await openReusePortSocket({ host, port: 0 });
  const sockets: ListenSocket[] = [first];
  const workers: Worker[] = [];
  try {
    while (sockets.length < count) sockets.push(await openReusePortSocket({ host: first.address, port: first.port }));
    for (const socket of sockets) {
      const worker = new Worker(WORKER, { workerData: { fd: socket.fd } });
      workers.push(worker);
      const [message] = await once(worker, 'message') as [unknown];
      if (message !== 'listening') throw new Error(`worker did not listen: ${JSON.stringify(message)}`);
    }
  } catch (error) {
    // A worker's server owns its socket; the ones not yet handed over are still ours.
    for (const socket of sockets.slice(workers.length)) closeSocket(socket.fd);
    await Promise.all(workers.map((w) => w.terminate()));
    throw error;
  }
  return {
    port: first.port,
    workers,
    async close() {
      await Promise.all(workers.map(async (worker) => {
        // Both listeners first: a worker that exits before its message is read has the message
        // and 'exit' emitted in one go.
        const closed = once(worker, 'message');
        const exited = once(worker, 'exit');
        worker.postMessage('close');
        assert.deepEqual(await closed, ['closed']);
        await exited;
      }));
    },
  };
}

/** One request on a connection of its own; resolves to the thread id that answered. */
function threadOf(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    get({ host, port, path: '/', agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve(Number(body)));
    }).on('error', reject);
  });
}

/** How many of `connections` new connections each thread answered. */
async function spread(host: string, port: number, connections: number): Promise<Map<number, number>> {
  const answered = new Map<number, number>();
  for (let i = 0; i < connections; i++) {
    const thread = await threadOf(host, port);
    answered.set(thread, (answered.get(thread) ?? 0) + 1);
  }
  return answered;
}

async function assertBothShardsAnswer(host: string): Promise<void> {
  const shards = await startShards(host, 2);
  try {
    const answered = await spread(host, shards.port, CONNECTIONS);
    assert.deepEqual([...answered.keys()].sort(), shards.workers.map((w) => w.threadId).sort(), `answers per thread: ${JSON.stringify([...answered])}`);
    assert.equal([...answered.values()].reduce((a, b) => a + b), CONNECTIONS);
  } finally {
    await shards.close();
  }
}

/** Listens with Node's own `listen` (SO_REUSEADDR, no SO_REUSEPORT); rejects with its error. */
async function plainServer(port: number, host: string): Promise<Server> {
  const server = createServer();
  server.listen(port, host);
  await once(server, 'listening');
  return server;
}

/** The process's open descriptors and what each is; the directory listing's own one is gone by readlink. */
function openDescriptors(): string[] {
  return readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      return [`${fd} → ${readlinkSync(`/proc/self/fd/${fd}`)}`];
    } catch {
      return [];
    }
  });
}

async function assertFailsWithoutLeak(promise: () => Promise<unknown>, expected: (error: NodeJS.ErrnoException) => boolean): Promise<void> {
  const before = openDescriptors();
  await assert.rejects(promise, (error: NodeJS.ErrnoException) => {
    assert.ok(expected(error), `unexpected error: ${error.message}`);
    return true;
  });
  assert.deepEqual(openDescriptors(), before);
}

test('two sockets on one port, each served by a worker thread, share new connections between them', async () => {
  await assertBothShardsAnswer('127.0.0.1');
});

test('the socket is non-blocking and close-on-exec, and reports the port the kernel chose', async () => {
  const socket = await openReusePortSocket({ host: '127.0.0.1', port: 0 });
  try {
    const flags = Number.parseInt(/^flags:\s*(\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${socket.fd}`, 'utf8'))![1]!, 8);
    assert.equal(flags & 0o4000, 0o4000, 'O_NONBLOCK');
    assert.equal(flags & 0o2000000, 0o2000000, 'O_CLOEXEC');
    assert.ok(socket.port > 0);
    assert.equal(socket.address, '127.0.0.1');
  } finally {
    closeSocket(socket.fd);
  }
});

test('IPv6: two sockets on ::1 share new connections between their workers', { skip: NO_IPV6_LOOPBACK }, async () => {
  await assertBothShardsAnswer('::1');
});

test('IPv6: a socket on :: takes IPv4 connections too (dual-stack, as libuv binds it)', { skip: NO_IPV6_LOOPBACK }, async () => {
  const shards = await startShards('::', 1);
  try {
    const [worker] = shards.workers;
    assert.equal(await threadOf('127.0.0.1', shards.port), worker!.threadId);
    assert.equal(await threadOf('::1', shards.port), worker!.threadId);
  } finally {
    await shards.close();
  }
});

test('a name resolves to the address Node\'s own listen picks for it', async () => {
  const node = await plainServer(0, 'localhost');
  const socket = await openReusePortSocket({ host: 'localhost', port: 0 });
  try {
    assert.equal(socket.address, (node.address() as AddressInfo).address);
  } finally {
    closeSocket(socket.fd);
    node.close();
  }
});

test('a port held by a plain Node server fails with EADDRINUSE naming the address, and leaves no descriptor open', async () => {
  const node = await plainServer(0, '127.0.0.1');
  const { port } = node.address() as AddressInfo;
  try {
    await assertFailsWithoutLeak(() => openReusePortSocket({ host: '127.0.0.1', port }), (error) =>
      error instanceof ListenSocketError && error.code === 'EADDRINUSE' && error.syscall === 'bind' &&
      error.message === `bind EADDRINUSE: address already in use 127.0.0.1:${port}`);
  } finally {
    node.close();
  }
});

test('an address this machine does not have fails with EADDRNOTAVAIL, and leaves no descriptor open', async () => {
  // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never assigned to a host.
  await assertFailsWithoutLeak(() => openReusePortSocket({ host: '192.0.2.1', port: 0 }), (error) =>
    error.code === 'EADDRNOTAVAIL' && error.message === 'bind EADDRNOTAVAIL: address not available 192.0.2.1:0');
});

test('a name that does not resolve fails with the resolver\'s error naming it, and leaves no descriptor open', async () => {
  // .invalid never resolves (RFC 6761); without a reachable resolver the answer is EAI_AGAIN.
  await assertFailsWithoutLeak(() => openReusePortSocket({ host: 'no-such-host.invalid', port: 0 }), (error) =>
    (error.code === 'ENOTFOUND' || error.code === 'EAI_AGAIN') && error.message.includes('no-such-host.invalid'));
});

test('an IPv6 zone id, an empty host and a port outside 0-65535 are refused before any socket is made', async () => {
  await assertFailsWithoutLeak(() => openReusePortSocket({ host: 'fe80::1%lo', port: 0 }), (error) =>
    /fe80::1%lo.*zone ids are not supported/.test(error.message));
  await assertFailsWithoutLeak(() => openReusePortSocket({ host: '', port: 0 }), (error) => error instanceof TypeError);
  for (const port of [-1, 65536, 80.5, Number.NaN]) {
    await assertFailsWithoutLeak(() => openReusePortSocket({ host: '127.0.0.1', port }), (error) => error instanceof RangeError);
  }
});

test('while the workers serve, a plain Node server cannot take the port; once they close, it can', async () => {
  const shards = await startShards('127.0.0.1', 2);
  try {
    await assert.rejects(plainServer(shards.port, '127.0.0.1'), { code: 'EADDRINUSE' });
  } finally {
    await shards.close();
  }
  const node = await plainServer(shards.port, '127.0.0.1');
  node.close();
});

/**
 * Connects `count` sockets from a child process while this thread is blocked (so the front accepts
 * none of them), and returns how many completed their handshake: each one that did sits in the
 * listen queue. The child waits for all of them; only a queue too short makes it wait out its bound.
 */
function burstWhileBlocked(port: number, count: number): number {
  const child = `
    const { connect } = require('node:net');
    let done = 0;
    const sockets = [];
    const finish = () => { process.stdout.write(String(done)); process.exit(0); };
    setTimeout(finish, 5000);
    for (let i = 0; i < ${count}; i++) {
      const s = connect(${port}, '127.0.0.1', () => { if (++done === ${count}) finish(); });
      s.on('error', () => {});
      sockets.push(s);
    }`;
  return Number(execFileSync(process.execPath, ['-e', child], { encoding: 'utf8' }));
}

test('a burst of a thousand connections fits the listen queue, on a port and on a shard\'s socket', async () => {
  const served = (): Promise<void> => Promise.resolve();
  const onPort = await startFront(served, { host: '127.0.0.1', port: 0, fastPath: () => null });
  const socket = await openReusePortSocket({ host: '127.0.0.1', port: 0 });
  const onFd = await startFront(served, { fd: socket.fd, fastPath: () => null });
  try {
    // Node's default queue (511) holds about half of them; the rest would retry a second later.
    assert.equal(burstWhileBlocked(onPort.port, 1000), 1000);
    assert.equal(burstWhileBlocked(onFd.port, 1000), 1000);
  } finally {
    await onPort.close();
    await onFd.close();
  }
});
