// Isolation between tenants on one thread. Closed instances give their VM shell and memory mapping
// back to a per-thread pool and a closed snapshot its mapping (src/vmm/memory/shell.ts), and the
// next program loaded there may be another tenant's. Tenant A (sdk_tenant_marker) fills all its
// memory with a marker at init and in requests, including ones that time out or crash; tenant B
// (sdk_tenant_scanner, another ELF) reads every word it can reach, at init and in each request.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Kvm } from '../../src/kvm/kvm.ts';
import type { Machine } from '../../src/vmm/machine.ts';
import { drainShellPool } from '../../src/vmm/memory/shell.ts';
import { computeLayout, MiB } from '../../src/vmm/x86/layout.ts';
import { Program } from '../../src/sandbox/program.ts';
import { type Instance } from '../../src/sandbox/instance.ts';
import type { SandboxRequest } from '../../src/sandbox/types.ts';
import { SandboxError } from '../../src/vmm/errors.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const MEMORY_MIB = 16;
const get = (url: string): SandboxRequest => ({ method: 'GET', url, headers: [['Host', 'test']], body: new Uint8Array(0) });
const text = (inst: Instance, url: string): string => inst.handle(get(url)).body.toString();
/** The host address of the memory behind an instance: the same one means the same pooled shell. */
const mappingOf = (inst: Instance): bigint => (inst as unknown as { machine: Machine }).machine.mem.mapping.address;
/** What the scanner answers when it found none of the marker, at init or in the request. */
const NOTHING = 'init=0 request=0\n';

describe('cross-tenant isolation', needsKvm(), () => {
  let kvm: Kvm;
  let markerElf: Buffer;
  let scannerElf: Buffer;
  const open = new Set<Program>();
  const close = (p: Program): void => {
    open.delete(p);
    p.close();
  };

  const loadMarker = (): Program => {
    const p = new Program(kvm, markerElf, { mode: 'sdk', name: 'tenant-a', memoryMiB: MEMORY_MIB, timeoutMs: 500 });
    open.add(p);
    return p;
  };
  const loadScanner = (): Program => {
    const layout = computeLayout(MEMORY_MIB * MiB);
    const env = [`ARENA_END=${layout.arenaEnd.toString(16)}`, `STACK_BOTTOM=${layout.stackBottom.toString(16)}`, `STACK_TOP=${layout.stackTop.toString(16)}`];
    const p = new Program(kvm, scannerElf, { mode: 'sdk', name: 'tenant-b', memoryMiB: MEMORY_MIB, env });
    open.add(p);
    return p;
  };
  /** Tenant A's whole repertoire: plain requests, a timeout and a crash, each leaving the marker. */
  const exerciseMarker = (inst: Instance): void => {
    assert.equal(text(inst, '/'), 'marked\n');
    assert.throws(() => inst.handle(get('/spin')), (err: unknown) => err instanceof SandboxError && err.kind === 'timeout');
    assert.throws(() => inst.handle(get('/crash')), (err: unknown) => err instanceof SandboxError && err.kind === 'fault');
    assert.equal(text(inst, '/'), 'marked\n');
  };
  /** The scanner finds nothing, then its own planted marker (so the scan works), then nothing again. */
  const assertScannerSeesNothing = (inst: Instance): void => {
    assert.equal(text(inst, '/'), NOTHING);
    assert.equal(text(inst, '/plant'), 'init=0 request=512\n');
    assert.equal(text(inst, '/'), NOTHING);
  };

  before(() => {
    kvm = new Kvm();
    markerElf = readFileSync(buildGuest('sdk_tenant_marker'));
    scannerElf = readFileSync(buildGuest('sdk_tenant_scanner'));
  });
  after(() => {
    for (const p of open) p.close();
    drainShellPool();
    kvm.close();
  });

  test('a program loaded on the VM shells another tenant just gave back finds none of its memory', () => {
    drainShellPool();
    const a = loadMarker();
    const a1 = a.instance();
    const a2 = a.instance();
    exerciseMarker(a1);
    exerciseMarker(a2);
    const used = new Set([mappingOf(a1), mappingOf(a2)]);
    a1.close();
    a2.close();
    close(a);

    const b = loadScanner();
    const b1 = b.instance();
    const b2 = b.instance();
    assert.deepEqual(new Set([mappingOf(b1), mappingOf(b2)]), used, "tenant B runs on tenant A's shells");
    assertScannerSeesNothing(b1);
    assertScannerSeesNothing(b2);
    b1.close();
    b2.close();
  });

  test('a program finds none of the memory of a tenant running beside it on the same thread', () => {
    const a = loadMarker();
    const b = loadScanner();
    const a1 = a.instance();
    const b1 = b.instance();
    for (let i = 0; i < 3; i++) {
      exerciseMarker(a1);
      assertScannerSeesNothing(b1);
    }
    a1.close();
    b1.close();
  });
});
