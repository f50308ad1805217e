// What a tenant program says goes to the operator's log: its te_log lines, its stderr, and (an SDK
// program's response going through the ABI) its stdout, one log record per line, with the tenant
// and program named.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { request } from 'undici';
import { parseConfig } from '../../src/server/config.ts';
import { EdgeServer } from '../../src/server/server.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

describe('serve: program log lines', needsKvm(), () => {
  let edge: EdgeServer;
  const records: Array<Record<string, unknown>> = [];

  before(async () => {
    const yaml = `
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0 }
tenants:
  - name: talk
    hosts: [talk.test]
    token: talk-token-0123456789
    programs:
      - { name: printer, file: ${buildGuest('sdk_stdout')}, roles: [generate], routes: [{ prefix: / }] }
`;
    const logger = pino({ level: 'info' }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
    edge = await EdgeServer.start(parseConfig(yaml, { file: '/tmp/tinyedge-program-logs-test.yaml' }), { logger });
  });

  after(async () => {
    await edge?.close();
  });

  test("an SDK program's stdout lines are logged like its stderr lines", async () => {
    const r = await request(`${edge.front.url}/hello`, { headers: { host: 'talk.test' } });
    assert.equal(await r.body.text(), 'logged\n');
    const lines = records.filter((rec) => rec.tenant === 'talk' && rec.program === 'printer').map((rec) => rec.msg);
    assert.ok(lines.includes('stdout: handling /hello'), JSON.stringify(lines));
    assert.ok(lines.includes('stderr: handling /hello'), JSON.stringify(lines));
  });
});
