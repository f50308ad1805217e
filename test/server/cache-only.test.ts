// A server whose tenants have no program is a cache in front of origins: it must start and serve
// on a host without KVM (a cloud VM without nested virtualisation), so it never opens /dev/kvm,
// on any thread of any shard. Its descriptors say so: this runs on every machine. Where KVM is
// there, the same server with a program does hold /dev/kvm (the probe sees what it looks for),
// and where it is not, that server refuses to start, naming the program that needs KVM and why.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { request } from 'undici';
import { KvmError } from '../../src/kvm/kvm.ts';
import { parseConfig } from '../../src/server/config.ts';
import { EdgeServer } from '../../src/server/server.ts';
import { buildGuest } from '../helpers/guests.ts';
import { kvmAvailable, needsKvm } from '../helpers/kvm.ts';

/** How many of this process's descriptors (every thread's) are /dev/kvm. */
function kvmDescriptors(): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === '/dev/kvm') n++;
    } catch {
      // The directory's own descriptor, closed once read.
    }
  }
  return n;
}

function config(originPort: number, programs: string): ReturnType<typeof parseConfig> {
  return parseConfig(`
server: { listen: 127.0.0.1:0, admin: 127.0.0.1:0, operatorToken: operator-token-0123456789, shards: 2 }
tenants:
  - name: site
    hosts: [site.test]
    token: site-token-0123456789
    origins: [{ name: default, url: http://127.0.0.1:${originPort} }]
${programs}`, { file: '/tmp/tinyedge-cache-only-test.yaml' });
}

const quiet = pino({ level: 'silent' });

describe('a server without programs', () => {
  let origin: Server;
  let port = 0;

  before(async () => {
    origin = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=600' });
      res.end('from the origin\n');
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    port = (origin.address() as AddressInfo).port;
  });

  after(async () => {
    await new Promise<void>((r) => origin.close(() => r()));
  });

  test('serves misses and hits on both shards and never opens /dev/kvm', async () => {
    const before = kvmDescriptors();
    const edge = await EdgeServer.start(config(port, ''), { logger: quiet });
    try {
      const caches: string[] = [];
      // Connections of their own, so that the kernel spreads them over both shards.
      for (let i = 0; i < 8; i++) {
        const r = await request(`${edge.front.url}/page`, { headers: { host: 'site.test', connection: 'close' } });
        assert.equal(r.statusCode, 200);
        assert.equal(await r.body.text(), 'from the origin\n');
        caches.push(String(r.headers['x-cache']));
      }
      assert.equal(caches[0], 'MISS');
      assert.ok(caches.slice(1).every((c) => c === 'HIT'), caches.join(', '));
      assert.equal(kvmDescriptors(), before);
    } finally {
      await edge.close();
    }
  });

  test('with a program, the server holds /dev/kvm', needsKvm(), async () => {
    const before = kvmDescriptors();
    const edge = await EdgeServer.start(config(port, `    programs:
      - { name: app, file: ${buildGuest('sdk_hostcalls')}, roles: [generate], routes: [{ prefix: /app }] }
`), { logger: quiet });
    try {
      assert.ok(kvmDescriptors() > before, 'the probe finds the descriptors a program needs');
    } finally {
      await edge.close();
    }
  });

  test('with a program where KVM is missing, the server does not start and says which program needs it', { skip: kvmAvailable() ? 'KVM is available here' : false }, async () => {
    await assert.rejects(EdgeServer.start(config(port, `    programs:
      - { name: app, file: ${buildGuest('sdk_hostcalls')}, roles: [generate], routes: [{ prefix: /app }] }
`), { logger: quiet }), (err: unknown) => err instanceof KvmError && /^tenant site, program app: programs run in KVM virtual machines, and cannot open \/dev\/kvm: .*; a config without programs .* runs without KVM$/.test(err.message));
  });
});
