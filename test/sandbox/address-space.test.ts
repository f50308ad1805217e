// The address space of request VMs across resets, in-process with real KVM: mappings, their
// protections and the pages behind them go back to the snapshot after every request, including
// what the CPU (or, on nested KVM, the shadow page tables) may still remember of a request's
// mappings; and a response body that lies above guest RAM, in pages backed far apart, reaches
// the host whole.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Kvm } from '../../src/kvm/kvm.ts';
import { type Instance, Program } from '../../src/sandbox/program.ts';
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
