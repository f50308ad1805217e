// One tenant's upload must not stall the others: a program whose main() sleeps before
// wait_for_requests() is loaded, initialised and warmed up on a loader thread of its own while
// the thread that serves keeps answering every other tenant. (Before, every serving thread ran the init itself.)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { parseConfig } from '../../src/server/config.ts';
import { EdgeServer } from '../../src/server/server.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const OP = 'operator-token-0123456789';
const SLOW_TOKEN = 'slow-token-0123456789';
const FAST_TOKEN = 'fast-token-0123456789';
/** How long the uploaded program sleeps in main(): what every other tenant waited before the fix. */
const SLOW_INIT_SECONDS = 15;
/** Far above a request's cost on a loaded 2-core machine, far below the stall the defect causes. */
const PROMPT_MS = 2000;

describe('upload isolation', needsKvm(), () => {
  let edge: EdgeServer;
  const agent = new Agent({ connections: 16 });

  const get = async (host: string, path: string) => {
    const r = await request(`${edge.front.url}${path}`, { headers: { host }, dispatcher: agent });
    return { status: r.statusCode, headers: r.headers, body: await r.body.text() };
  };
  const vmCalls = async (tenant: string, token: string): Promise<number> => {
    const r = await request(`${edge.admin.url}/v1/tenants/${tenant}/stats`, { headers: { authorization: `Bearer ${token}` }, dispatcher: agent });
    return ((await r.body.json()) as { counters: { vmCalls: number } }).counters.vmCalls;
  };

  before(async () => {
    const yaml = `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0, operatorToken: ${OP} }
tenants:
  - name: slow
    hosts: [slow.test]
    token: ${SLOW_TOKEN}
    programs:
      - name: app
        file: ${buildGuest('sdk_headers')}
        roles: [generate]
        routes: [{ prefix: / }]
        initTimeout: 60s
        env: { SLOW_INIT_SECONDS: "${SLOW_INIT_SECONDS}" }
  - name: fast
    hosts: [fast.test]
    token: ${FAST_TOKEN}
    programs:
      - { name: app, file: ${buildGuest('sdk_misbehave')}, roles: [generate], routes: [{ prefix: / }], concurrency: 4 }
`;
    edge = await EdgeServer.start(parseConfig(yaml, { file: '/tmp/tinyedge-upload-isolation.yaml' }), { logger: pino({ level: 'silent' }) });
  });

  after(async () => {
    await edge?.close();
    await agent.close();
  });

  test("another tenant's requests are answered promptly while a slow program initialises", async (t) => {
    const started = performance.now();
    let uploadDone = false;
    const upload = request(`${edge.admin.url}/v1/tenants/slow/programs/app`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${SLOW_TOKEN}` },
      body: readFileSync(buildGuest('sdk_slow_init')),
      dispatcher: agent,
    }).then(async (r) => ({ status: r.statusCode, json: (await r.body.json()) as Record<string, unknown> })).finally(() => (uploadDone = true));
    // Let the upload get into the program's main() first.
    await new Promise((r) => setTimeout(r, 1000));

    const callsBefore = await vmCalls('fast', FAST_TOKEN);
    const took: number[] = [];
    for (let i = 0; i < 6; i++) {
      const t0 = performance.now();
      // A new URL each time: a miss, so the program runs in a VM.
      const r = await get('fast.test', `/item/${i}`);
      took.push(Math.round(performance.now() - t0));
      assert.equal(r.status, 200);
      assert.equal(r.body, 'ok served=0\n');
      assert.equal(r.headers['x-cache'], 'MISS');
    }
    t.diagnostic(`request times (ms): ${took.join(', ')}`);
    assert.ok(took.every((ms) => ms < PROMPT_MS), `request times (ms): ${took.join(', ')}`);
    assert.equal(await vmCalls('fast', FAST_TOKEN), callsBefore + took.length);
    assert.equal(uploadDone, false, 'the slow upload was still initialising while those requests ran');

    // The slow program does load, and serves, once its main() is done.
    const uploaded = await upload;
    assert.equal(uploaded.status, 200, JSON.stringify(uploaded.json));
    assert.ok(performance.now() - started >= SLOW_INIT_SECONDS * 1000);
    const ready = await get('slow.test', '/x');
    assert.equal(ready.status, 200);
    assert.equal(ready.body, 'ready\n');
  });
});
