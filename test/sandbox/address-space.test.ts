// The address space and the kernel objects of request VMs across resets, in-process with real
// KVM: mappings, their protections and the pages behind them go back to the snapshot after every
// request, including what the CPU (or, on nested KVM, the shadow page tables) may still remember
// of a request's mappings; a response body that lies above guest RAM, in pages backed far apart,
// reaches the host whole; pipes, eventfds and epoll instances made at init are back as they were.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Kvm } from '../../src/kvm/kvm.ts';
import { Program } from '../../src/sandbox/program.ts';
import { type Instance } from '../../src/sandbox/instance.ts';
import type { SandboxRequest } from '../../src/sandbox/types.ts';
import { SandboxError } from '../../src/vmm/errors.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const get = (url: string): SandboxRequest => ({ method: 'GET', url, headers: [['Host', 'test']], body: new Uint8Array(0) });
const text = (inst: Instance, url: string): string => inst.handle(get(url)).body.toString();

function assertFault(inst: Instance, url: string, message: RegExp): void {
  assert.throws(() => inst.handle(get(url)), (err: unknown) => err instanceof SandboxError && err.kind === 'fault' && message.test(err.message), url);
}

describe('request VMs: the address space goes back to the snapshot', needsKvm(), () => {
  let kvm: Kvm;
  let program: Program;

  before(() => {
    kvm = new Kvm();
    program = new Program(kvm, readFileSync(buildGuest('sdk_address_space')), { mode: 'sdk', name: 'sdk_address_space', memoryMiB: 32 });
  });
  after(() => {
    program.close();
    kvm.close();
  });

  /** Every step twice in a row, on `inst`: the second proves the first left nothing behind. */
  function steps(inst: Instance): void {
    for (let round = 0; round < 2; round++) {
      assert.equal(text(inst, '/map'), 'mapped\n', 'a mapping made by a request is gone after it');
      assertFault(inst, '/peek', /page fault at 0x230000000000 .*read of unmapped memory/);
      assert.equal(text(inst, '/unprotect'), 'unprotected\n');
      assertFault(inst, '/touch-none', /page fault at 0x220000000000 .*PROT_NONE/);
      assert.equal(text(inst, '/ro-write'), 'written\n');
      assertFault(inst, '/ro-poke', /write to read-only memory/);
      assert.equal(text(inst, '/protect'), 'mprotect 0\n');
      assert.equal(text(inst, '/check'), 'first byte I, ro byte 0\n');
      assert.equal(text(inst, '/unmap'), 'munmap 0\n');
      assert.equal(text(inst, '/check'), 'first byte I, ro byte 0\n');
    }
  }

  test('mappings, protections and pages made or changed by a request are gone after its reset', () => {
    const inst = program.instance();
    steps(inst);
    inst.close();
  });

  test('the same holds in an instance made from the snapshot in a new VM', () => {
    const first = program.instance();
    const second = program.instance();
    steps(second);
    steps(first);
    first.close();
    second.close();
  });

  test('a response body above guest RAM, in pages backed apart, arrives whole; one in PROT_NONE memory is refused', () => {
    const inst = program.instance();
    const expected = Buffer.alloc(200_000);
    for (let i = 0; i < expected.length; i++) expected[i] = 0x61 + (i % 26);
    for (let i = 0; i < 3; i++) assert.ok(inst.handle(get('/body')).body.equals(expected), `body of request ${i}`);
    assert.throws(() => inst.handle(get('/bad-body')), (err: unknown) => err instanceof SandboxError && err.kind === 'bad-response' && /points outside the program's memory \(0x220000000000\)/.test(err.message));
    assert.equal(text(inst, '/check'), 'first byte I, ro byte 0\n');
    inst.close();
  });
});

describe('request VMs: pipes, eventfds and epoll go back to the snapshot', needsKvm(), () => {
  test('each request finds the pipe, counter and epoll instance as init left them, and the same fds free', () => {
    const kvm = new Kvm();
    const program = new Program(kvm, readFileSync(buildGuest('sdk_events')), { mode: 'sdk', name: 'sdk_events' });
    try {
      const expected = 'ready=2 pipe=snapshot (8) counter=5 (8) next pipe fds=7,8\n';
      const first = program.instance();
      const second = program.instance();
      for (let i = 0; i < 3; i++) {
        assert.equal(text(first, '/'), expected, `request ${i}`);
        assert.equal(text(second, '/'), expected, `request ${i} in a new VM`);
      }
      first.close();
      second.close();
    } finally {
      program.close();
      kvm.close();
    }
  });
});
