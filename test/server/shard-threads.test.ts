// The main thread's side of the other shards as the server stops: a shard's thread ends once it
// has closed, so a command asked from then on (the live log changing what the shards record as a
// reader's stream ends during the stop) must be refused at once. Sent, it reached a thread about to
// end, was never answered, and the server's close waited for it for ever.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { SharedStorage } from '../../src/cache/shared-storage.ts';
import { RECORD_NOTHING } from '../../src/server/records.ts';
import { RemoteShards } from '../../src/server/shards.ts';

test('once the shards are closing, a command is refused with the reason, and the close completes', async () => {
  const storage = SharedStorage.create(1024 * 1024);
  const shards = await RemoteShards.start(2, { shards: 3, sliceMs: 50, cache: storage.handle() }, () => undefined, pino({ level: 'silent' }));
  // Answered while they serve.
  assert.deepEqual(await shards.all({ type: 'record', scope: RECORD_NOTHING }), [undefined, undefined]);
  const closing = shards.close();
  await assert.rejects(shards.all({ type: 'record', scope: { all: true, tenants: [] } }), /the shards are closed/);
  await assert.rejects(shards.one(1, { type: 'stats', tenant: 'a' }), /the shards are closed/);
  // A second close is the first one.
  assert.equal(shards.close(), closing);
  await closing;
  await assert.rejects(shards.all({ type: 'record', scope: RECORD_NOTHING }), /the shards are closed/);
});
