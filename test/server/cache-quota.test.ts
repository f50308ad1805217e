// A tenant program that tags every answer with 1024 surrogate keys of its own (test/guests/
// many_tags.c) through `serve`: its cache stays within its quota, counting the tags, and what it
// holds can still be purged by tag. Over real HTTP, real VMs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { request } from 'undici';
import { parseConfig } from '../../src/server/config.ts';
import { EdgeServer } from '../../src/server/server.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const TOKEN = 'tagger-token-0123456789';
const QUOTA = 1024 * 1024;
/** Least a unique surrogate key of these answers is charged: its characters (`100149-7`) and a separator. */
const CHARGE_PER_TAG = 9;

describe('a tenant whose answers carry many unique tags', needsKvm(), () => {
  let edge: EdgeServer;

  const get = async (path: string): Promise<string> => {
    const r = await request(`${edge.front.url}${path}`, { headers: { host: 'tagger.test' } });
    await r.body.text();
    return String(r.headers['x-cache']);
  };
  const admin = async (method: 'GET' | 'POST', path: string, body?: string): Promise<Record<string, unknown>> => {
    const r = await request(`${edge.admin.url}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` }, body });
    assert.equal(r.statusCode, 200);
    return (await r.body.json()) as Record<string, unknown>;
  };

  before(async () => {
    const config = parseConfig(`
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0 }
tenants:
  - name: tagger
    hosts: [tagger.test]
    token: ${TOKEN}
    cache: { memory: 1MiB, maxObjectSize: 1MiB }
    programs:
      - { name: tags, file: ${buildGuest('many_tags')}, roles: [generate], routes: [{ prefix: / }] }
`, { file: '/tmp/tinyedge-cache-quota-test.yaml' });
    edge = await EdgeServer.start(config, { logger: pino({ level: 'silent' }) });
  });
  after(() => edge?.close());

  test('stays within its cache quota with the tags counted, and tag purges still work', async () => {
    for (let i = 0; i < 150; i++) assert.equal(await get(`/o/${100000 + i}`), 'MISS');
    const cache = (await admin('GET', '/v1/tenants/tagger/stats')).cache as { objects: number; bytes: number; tags: number; evictions: number };
    assert.ok(cache.bytes <= QUOTA, `bytes ${cache.bytes}`);
    assert.ok(cache.evictions > 0);
    assert.equal(cache.tags, cache.objects * 1024);
    assert.ok(cache.tags * CHARGE_PER_TAG <= cache.bytes, `${cache.tags} tags charged ${cache.bytes} bytes`);

    assert.equal(await get('/o/100149'), 'HIT');
    assert.deepEqual(await admin('POST', '/v1/tenants/tagger/purge-tag', JSON.stringify({ tag: '100149-7' })), { purged: 1 });
    assert.equal(await get('/o/100149'), 'MISS');
  });
});
