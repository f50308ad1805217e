// A persistent program with a warm-up, configured and served end to end: the config's lifecycle,
// reset bound and warm-up reach the program pool, and requests through the front see the state
// the previous ones left, and across a live upload.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'undici';
import { parseConfig } from '../../src/server/config.ts';
import { EdgeServer } from '../../src/server/server.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

describe('serve: a persistent program', needsKvm(), () => {
  let edge: EdgeServer;

  before(async () => {
    const yaml = `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0, shards: 1 }  # one shard: the test follows one instance's state
tenants:
  - name: keep
    hosts: [keep.test]
    token: keep-token-0123456789
    programs:
      - name: counter
        file: ${buildGuest('sdk_persistent')}
        routes: [{ prefix: / }]
        concurrency: 1
        lifecycle: persistent
        resetAfterRequests: 4
        warmup: { requests: 2 }
`;
    edge = await EdgeServer.start(parseConfig(yaml, { file: '/tmp/tinyedge-persistent-test.yaml' }));
  });

  after(async () => {
    await edge?.close();
  });

  test('requests see the state the previous ones left, from the warmed snapshot, up to the reset bound', async () => {
    const seen: string[] = [];
    // A distinct URL each time, so that no answer comes from the cache.
    for (let i = 0; i < 6; i++) {
      const r = await request(`${edge.front.url}/n?i=${i}`, { headers: { host: 'keep.test' } });
      assert.equal(r.statusCode, 200);
      seen.push(/count=\d+ warm=\d+/.exec(await r.body.text())?.[0] ?? '?');
    }
    // The upload check ran on its own instance, thrown away: the first client request is the third request of the snapshot.
    assert.deepEqual(seen, ['count=3 warm=2', 'count=4 warm=2', 'count=5 warm=2', 'count=6 warm=2', 'count=3 warm=2', 'count=4 warm=2']);
  });

  test('state survives a live upload: the new version goes on from the count the old one handed over', async () => {
    const count = async (i: string): Promise<number> => {
      const r = await request(`${edge.front.url}/u?i=${i}`, { headers: { host: 'keep.test' } });
      return Number(/count=(\d+)/.exec(await r.body.text())?.[1]);
    };
    const before = await count('before');
    await edge.uploadProgram('keep', 'counter', readFileSync(buildGuest('sdk_persistent')));
    // The new version restored the old count before its snapshot, then answered its 2 warm-up requests.
    assert.equal(await count('after'), before + 3);
  });
});
