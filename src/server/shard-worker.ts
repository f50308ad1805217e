// A shard's thread: accepts its own connections on its own listening socket and serves them —
// cache hits, misses, and guest calls on this very thread (shard.ts) — as the main thread's shard
// does. The main thread sends every change (programs to adopt, tenant updates, purges); key-value
// calls go to the main thread, which owns the stores, and log records are forwarded to its logger.
import { parentPort, workerData } from 'node:worker_threads';
import { type Front, startFront } from '../http/front.ts';
import { SharedStorage } from '../cache/index.ts';
import { ProgramPool } from '../sandbox/index.ts';
import { type KvAccess, remoteKv } from './kv.ts';
import { Shard } from './shard.ts';
import type { FromShard, ShardCommand, ShardInit, ToShard } from './shard-protocol.ts';
import type { Logger } from './tenant.ts';
import type { FailureBundle } from './failure-bundles.ts';

const port = parentPort;
if (!port) throw new Error('shard-worker.ts must run as a worker thread');
const init = workerData as ShardInit;
const send = (msg: FromShard, transfer: ArrayBuffer[] = []): void => port.postMessage(msg, transfer);

const log: Logger = {
  info: (details, message) => send({ type: 'log', level: 'info', details: { ...details, shard: init.index }, message }),
  warn: (details, message) => send({ type: 'log', level: 'warn', details: { ...details, shard: init.index }, message }),
};

const kvWaiters = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
let nextCallId = 1;
const kv = (tenant: string): KvAccess => remoteKv((request) => new Promise((resolve, reject) => {
  const callId = nextCallId++;
  kvWaiters.set(callId, { resolve, reject });
  send({ type: 'kv', callId, tenant, request });
}));

// Failure bundles are rare (a few a second per tenant at most): one message each.
const failures = { shard: init.index, keep: (bundle: FailureBundle) => send({ type: 'bundle', bundle }) };
const shard = new Shard(init.index, init.shards, await ProgramPool.start({ sliceMs: init.sliceMs }), kv, log, SharedStorage.attach(init.cache), failures);
let front: Front | undefined;

async function run(command: ShardCommand): Promise<unknown> {
  switch (command.type) {
    case 'adopt':
      return shard.pool.adopt(command.key, command.program, command.options);
    case 'unload':
      return shard.pool.unload(command.key);
    case 'update':
      return shard.update(command.update);
    case 'swap':
      return shard.swapProgram(command.tenant, command.program);
    case 'listen':
      front = await startFront((req, res) => shard.handle(req, res), { fd: command.fd, fastPath: (r) => shard.fastAnswer(r) });
      return undefined;
    case 'purge':
      return shard.tenant(command.tenant).cache.purge(command.url);
    case 'purgeTag':
      return shard.tenant(command.tenant).cache.purgeTag(command.tag);
    case 'ban':
      return shard.tenant(command.tenant).cache.ban(command.expression);
    case 'stats':
      return shard.stats(command.tenant);
    case 'record':
      // The batch's columns are shared memory: the message shares them, not copies them.
      return shard.setRecording(command.scope, (batch) => send({ type: 'records', batch }));
    case 'close':
      await front?.close();
      await shard.close();
      setImmediate(() => process.exit(0));
      return undefined;
  }
}

port.on('message', (msg: ToShard) => {
  if (msg.type === 'kvResult') {
    const waiter = kvWaiters.get(msg.callId);
    kvWaiters.delete(msg.callId);
    if (msg.ok) waiter?.resolve(msg.value);
    else waiter?.reject(new Error(msg.message));
    return;
  }
  run(msg.command).then(
    (value) => send({ type: 'done', id: msg.id, value }),
    (err: unknown) => send({ type: 'failed', id: msg.id, message: err instanceof Error ? err.message : String(err) }),
  );
});

send({ type: 'ready' });
