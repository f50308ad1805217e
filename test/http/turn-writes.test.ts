// Answers written in one turn of the event loop leave together at its end (src/http/turn-writes.ts):
// until then they wait in the socket's stream, not in the kernel; a socket that ends or is
// destroyed meanwhile is no trouble; and they leave before the instances that made them are reset.
// Real TCP over loopback, a real program in its VM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { startFront } from '../../src/http/front.ts';
import type { FastPath } from '../../src/http/fast-path.ts';
import { holdUntilTurnEnds } from '../../src/http/turn-writes.ts';
import { ProgramPool } from '../../src/sandbox/program-pool.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

/** A connected pair over loopback: `ours` writes, `peer` collects what arrives. */
async function pair(): Promise<{ ours: Socket; peer: Socket; received: () => string; close: () => void }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const accepted = once(server, 'connection');
  const peer = connect(port, '127.0.0.1');
  const [ours] = (await accepted) as [Socket];
  let text = '';
  peer.on('data', (d: Buffer) => (text += d.toString('latin1')));
  return {
    ours,
    peer,
    received: () => text,
    close: () => {
      ours.destroy();
      peer.destroy();
      server.close();
    },
  };
}

const turnEnds = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('writes of one turn wait in the stream until the turn ends, then leave in order', async () => {
  const p = await pair();
  holdUntilTurnEnds(p.ours);
  p.ours.write('first ');
  holdUntilTurnEnds(p.ours);
  p.ours.write('second');
  // Held: nothing handed to the kernel yet.
  assert.equal(p.ours.writableCorked, 2);
  assert.equal(p.ours.writableLength, 'first second'.length);
  await turnEnds();
  assert.equal(p.ours.writableCorked, 0);
  while (p.received().length < 12) await once(p.peer, 'data');
  assert.equal(p.received(), 'first second');
  p.close();
});

test('sockets written in the same turn all go at its end; a write in a later turn is held again', async () => {
  const a = await pair();
  const b = await pair();
  holdUntilTurnEnds(a.ours);
  a.ours.write('to a');
  holdUntilTurnEnds(b.ours);
  b.ours.write('to b');
  assert.equal(a.ours.writableLength + b.ours.writableLength, 8);
  await turnEnds();
  assert.equal(a.ours.writableCorked + b.ours.writableCorked, 0);
  holdUntilTurnEnds(a.ours);
  a.ours.write(' again');
  assert.equal(a.ours.writableCorked, 1);
  await turnEnds();
  while (a.received().length < 10) await once(a.peer, 'data');
  while (b.received().length < 4) await once(b.peer, 'data');
  assert.equal(a.received(), 'to a again');
  assert.equal(b.received(), 'to b');
  a.close();
  b.close();
});

test('end() sends a held answer at once, and a socket destroyed while held is let go without error', async () => {
  const ended = await pair();
  holdUntilTurnEnds(ended.ours);
  ended.ours.end('last words');
  assert.equal(ended.ours.writableCorked, 0);
  await once(ended.peer, 'end');
  assert.equal(ended.received(), 'last words');

  const gone = await pair();
  holdUntilTurnEnds(gone.ours);
  gone.ours.write('never sent');
  gone.ours.destroy();
  await turnEnds();
  assert.equal(gone.ours.destroyed, true);
  ended.close();
  gone.close();
});

test("a program's answer written when its call returns leaves before its instance is reset", needsKvm(), async () => {
  const pool = await ProgramPool.start();
  await pool.load('t/fresh@1', readFileSync(buildGuest('sdk_misbehave')), { mode: 'sdk', name: 'fresh', concurrency: 1, queueTimeoutMs: 1000 });
  const p = await pair();
  try {
    let atReset: { corked: number; unsent: number } | undefined;
    const reset = new Promise<void>((resolve) => {
      const settled = (): void => {
        atReset = { corked: p.ours.writableCorked, unsent: p.ours.writableLength };
        resolve();
      };
      void pool.call('t/fresh@1', { method: 'GET', url: '/', headers: [['Host', 'test']], body: new Uint8Array(0) }, { usage: { guestUs: 0, runUs: 0, exits: 0, dirtyPages: 0, settled } }).then((r) => {
        holdUntilTurnEnds(p.ours);
        p.ours.write(r.body);
      });
    });
    await reset;
    // The reset ran after the answer went to the kernel.
    assert.deepEqual(atReset, { corked: 0, unsent: 0 });
    while (p.received().length < 'ok served=0\n'.length) await once(p.peer, 'data');
    assert.equal(p.received(), 'ok served=0\n');
  } finally {
    p.close();
    await pool.close();
  }
});

test('a front closed in the turn an answer was made still sends that answer whole', async () => {
  const body = Buffer.from('answered before the close\n');
  const answer = { status: 200, head: Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n`), body };
  let closing: Promise<void> | undefined;
  const fastPath: FastPath = () => {
    const made = Promise.resolve(answer);
    // Runs after the front has written (and held) the answer, in the same turn: the front
    // attaches its own reaction after this one, and this one waits one more microtask.
    void made.then(() => Promise.resolve().then(() => (closing = front.close())));
    return made;
  };
  const front = await startFront(() => undefined, { fastPath });
  const socket = connect(front.port, '127.0.0.1');
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  socket.write('GET /x HTTP/1.1\r\nHost: test\r\n\r\n');
  await once(socket, 'close');
  await closing;
  assert.match(text, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nanswered before the close\n$/);
});

test("a closing front lets an answer being made finish, then ends that connection; an idle one it ends at once", async () => {
  const body = Buffer.from('made after the close began\n');
  const answer = { status: 200, head: Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n`), body };
  let finish: (() => void) | undefined;
  let asked!: () => void;
  const askedForSlow = new Promise<void>((resolve) => (asked = resolve));
  const fastPath: FastPath = (req) => {
    // Made later too, at once: the connection has been answering, and is idle again after.
    if (req.url === '/now') return Promise.resolve(answer);
    asked();
    return new Promise((done) => (finish = () => done(answer)));
  };
  const front = await startFront(() => undefined, { fastPath });
  const read = (socket: Socket): (() => string) => {
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    return () => text;
  };
  // An idle keep-alive connection: answered once (a made answer), then waiting for its next request.
  const idle = connect(front.port, '127.0.0.1');
  const idleText = read(idle);
  idle.write('GET /now HTTP/1.1\r\nHost: test\r\n\r\n');
  while (!idleText().endsWith(body.toString('latin1'))) await once(idle, 'data');
  // A connection whose answer is being made when the front closes.
  const busy = connect(front.port, '127.0.0.1');
  const busyText = read(busy);
  busy.write('GET /slow HTTP/1.1\r\nHost: test\r\n\r\n');
  await askedForSlow;
  const closing = front.close();
  await once(idle, 'close');
  assert.equal(busyText(), '', 'nothing sent on the busy connection yet');
  assert.equal(busy.destroyed, false, 'the busy connection is still open');
  finish!();
  await once(busy, 'close');
  await closing;
  assert.match(busyText(), /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nmade after the close began\n$/);
});
