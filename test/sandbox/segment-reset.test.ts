// A request may change FS base, GS base and segment selectors without a system call the host
// sees (wrfsbase, wrgsbase, `mov` to a segment register). The reset after the request puts them
// back, so the next request, in SDK or CGI mode, starts from the snapshot's values.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Kvm } from '../../src/kvm/kvm.ts';
import { Program } from '../../src/sandbox/program.ts';
import { type Instance } from '../../src/sandbox/instance.ts';
import type { SandboxRequest } from '../../src/sandbox/types.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const get = (url: string): SandboxRequest => ({ method: 'GET', url, headers: [['Host', 'test']], body: new Uint8Array(0) });
const FLAGS = ['-mfsgsbase', '-fno-stack-protector'];

describe('segment state after a request', needsKvm(), () => {
  let kvm: Kvm;
  const opened: Array<Program | Instance> = [];
  const load = (name: string, mode: 'sdk' | 'cgi'): Instance => {
    const program = new Program(kvm, readFileSync(buildGuest(name, 'glibc', FLAGS)), { mode, name, timeoutMs: 2000 });
    const inst = program.instance();
    opened.push(inst, program);
    return inst;
  };

  before(() => {
    kvm = new Kvm();
  });
  after(() => {
    for (const o of opened) o.close();
    kvm.close();
  });

  test('FS base, GS base and selectors changed by an SDK request are back for the next one', async () => {
    const inst = load('sdk_segments', 'sdk');
    const first = (await inst.call(get('/'))).body.toString();
    assert.match(first, /^fs=[0-9a-f]+ gs=0 ds=[0-9a-f]+ es=[0-9a-f]+\n$/);
    assert.doesNotMatch(first, /fs=1234000|ds=2b|es=2b/);
    for (let i = 0; i < 3; i++) {
      assert.equal((await inst.call(get('/dirty'))).body.toString(), first);
    }
    assert.equal((await inst.call(get('/'))).body.toString(), first);
  });

  test('GS base and selectors changed by a CGI request are back for the next one', async () => {
    const inst = load('cgi_segments', 'cgi');
    const first = (await inst.call(get('/'))).body.toString();
    assert.equal(first, 'gs=0 es=0\n');
    for (let i = 0; i < 3; i++) assert.equal((await inst.call(get('/'))).body.toString(), first);
  });
});
