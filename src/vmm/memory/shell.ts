// VM shells: a KVM VM with its vCPU configured (CPUID, XCR0, MSRs), one memory slot with dirty
// logging, and the host mapping behind it — everything a request VM needs except its contents.
// Creating one costs a few milliseconds (KVM_CREATE_VM, vCPU setup, and a V8 garbage collection
// that every new multi-megabyte ArrayBuffer provokes), so closed instances give their shell back
// to a per-thread pool and new instances and program loads take one from it, swapping in new
// memory contents with MAP_FIXED at the same addresses.
import type { Kvm } from '../../kvm/kvm.ts';
import { type Mapping, MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, MAP_SHARED, mmap, munmap, PROT_READ, PROT_WRITE, remap } from '../../kvm/libc.ts';
import type { Vcpu } from '../../kvm/vcpu.ts';
import type { Vm } from '../../kvm/vm.ts';
import { configureVcpu, type CpuFeatures, hostCpuFeatures, setInitialMsrs } from '../x86/cpu.ts';
import { DirtyLog } from './dirty-log.ts';

export interface Shell {
  readonly kvm: Kvm;
  readonly vm: Vm;
  readonly vcpu: Vcpu;
  readonly mapping: Mapping;
  /** Present when the slot logs dirty pages (request VMs). */
  readonly dirtyLog: DirtyLog | undefined;
}

/** Idle shells kept per memory size and thread; idle bare mappings likewise. */
const MAX_IDLE = 16;
const idle = new Map<string, Shell[]>();
const idleMappings = new Map<number, Mapping[]>();

/**
 * A mapping of `size` bytes whose ArrayBuffer is reused across owners: private copy-on-write of
 * `fd` (or shared with it, with `shared`), or zero-filled anonymous memory without `fd`.
 */
export function acquireMapping(size: number, fd?: number, shared = false): Mapping {
  const flags = fd === undefined ? MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE : shared ? MAP_SHARED : MAP_PRIVATE;
  const pooled = idleMappings.get(size)?.pop();
  if (pooled) {
    remap(pooled, PROT_READ | PROT_WRITE, flags, fd ?? -1, 0);
    return pooled;
  }
  return mmap(size, PROT_READ | PROT_WRITE, flags, fd ?? -1, 0);
}

/** Drops the mapping's pages and keeps its addresses (and ArrayBuffer) for the next owner. */
export function releaseMapping(mapping: Mapping): void {
  const list = idleMappings.get(mapping.length) ?? [];
  if (list.length >= MAX_IDLE) {
    munmap(mapping);
    return;
  }
  remap(mapping, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
  list.push(mapping);
  idleMappings.set(mapping.length, list);
}
const featureCache = new WeakMap<Kvm, CpuFeatures>();

export function cpuFeatures(kvm: Kvm): CpuFeatures {
  let features = featureCache.get(kvm);
  if (!features) featureCache.set(kvm, (features = hostCpuFeatures(kvm)));
  return features;
}

const key = (kvm: Kvm, size: number, logged: boolean): string => `${kvm.fd}:${size}:${logged}`;

/** vCPU state that only ioctls reach, as it is on a vCPU that never ran (taken once per KVM). */
interface PristineVcpu {
  xsave: Buffer;
  debugregs: Buffer;
  events: Buffer;
}
const pristineCache = new WeakMap<Kvm, PristineVcpu>();

/**
 * Puts a pooled shell's vCPU back to the state of one that never ran, so that the next program
 * (perhaps another tenant's) finds nothing of the last one: x87/SSE/AVX state and MXCSR, debug
 * registers, pending events and MSRs. Registers and segments are set by every boot and snapshot
 * start anyway.
 */
function scrubVcpu(shell: Shell): void {
  const pristine = pristineCache.get(shell.kvm);
  if (!pristine) throw new Error('a pooled shell from a KVM whose pristine vCPU state was never taken');
  shell.vcpu.setXsave(pristine.xsave);
  shell.vcpu.setDebugregs(pristine.debugregs);
  shell.vcpu.setVcpuEvents(pristine.events);
  setInitialMsrs(shell.vcpu);
}

/**
 * A shell for `size` bytes of guest memory whose contents are zero, or a private copy-on-write
 * view of the memfd `fd` when given.
 */
export function acquireShell(kvm: Kvm, size: number, logDirty: boolean, fd?: number): Shell {
  const pooled = idle.get(key(kvm, size, logDirty))?.pop();
  if (pooled) {
    if (fd !== undefined) remap(pooled.mapping, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    else remap(pooled.mapping, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    pooled.dirtyLog?.forget();
    scrubVcpu(pooled);
    return pooled;
  }
  const mapping = acquireMapping(size, fd);
  const vm = kvm.createVm();
  try {
    const dirtyLog = logDirty ? new DirtyLog(vm, size) : undefined;
    vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, size, userspaceAddr: mapping.address, logDirtyPages: logDirty });
    const vcpu = vm.createVcpu(0);
    configureVcpu(kvm, vcpu, cpuFeatures(kvm));
    if (!pristineCache.has(kvm)) pristineCache.set(kvm, { xsave: vcpu.getXsave(), debugregs: vcpu.getDebugregs(), events: vcpu.getVcpuEvents() });
    return { kvm, vm, vcpu, mapping, dirtyLog };
  } catch (err) {
    vm.close();
    releaseMapping(mapping);
    throw err;
  }
}

/** Gives a shell back for reuse (its memory is dropped now), or destroys it when the pool is full. */
export function releaseShell(shell: Shell): void {
  const k = key(shell.kvm, shell.mapping.length, shell.dirtyLog !== undefined);
  const list = idle.get(k) ?? [];
  if (list.length >= MAX_IDLE) {
    destroyShell(shell);
    return;
  }
  remap(shell.mapping, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
  list.push(shell);
  idle.set(k, list);
}

export function destroyShell(shell: Shell): void {
  shell.dirtyLog?.close();
  shell.vcpu.close();
  shell.vm.close();
  releaseMapping(shell.mapping);
}

/** Destroys every idle shell and mapping of this thread (tests and shutdown). */
export function drainShellPool(): void {
  for (const list of idle.values()) for (const shell of list) destroyShell(shell);
  idle.clear();
  for (const list of idleMappings.values()) for (const mapping of list) munmap(mapping);
  idleMappings.clear();
}
