// `/dev/kvm` as an object: checked at open (API version and every capability tinyedge relies on),
// the supported CPUID table, and VM creation.
import { missingCapability } from './capabilities.ts';
import * as K from './constants.ts';
import { check, checkRetryingEintr, close, ioctlInt, ioctlPtr, open, O_CLOEXEC, O_RDWR, SysError } from './libc.ts';
import { Vm } from './vm.ts';

/** KVM cannot be used here: /dev/kvm is missing or not accessible, or lacks what tinyedge needs. */
export class KvmError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KvmError';
  }
}

/** One CPUID leaf as `struct kvm_cpuid_entry2` describes it. */
export interface CpuidEntry {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

/**
 * An open /dev/kvm, checked at open (throws KvmError naming what is missing); it makes the VMs of
 * programs and instances. One per thread that runs guests; `close()` when done.
 */
export class Kvm {
  readonly fd: number;
  readonly vcpuMmapSize: number;
  private cpuidCache: CpuidEntry[] | undefined;

  constructor(path = '/dev/kvm') {
    let fd: number;
    try {
      fd = check(`open ${path}`, open(path, O_RDWR | O_CLOEXEC));
    } catch (err) {
      if (err instanceof SysError) throw new KvmError(`cannot open ${path}: ${err.message} (is KVM enabled and accessible?)`);
      throw err;
    }
    this.fd = fd;
    const version = ioctlInt(fd, K.KVM_GET_API_VERSION, 0);
    if (version !== K.KVM_API_VERSION) {
      close(fd);
      throw new KvmError(`unsupported KVM API version ${version} (expected ${K.KVM_API_VERSION})`);
    }
    const missing = missingCapability((cap) => this.checkExtension(cap));
    if (missing) {
      close(fd);
      throw new KvmError(missing);
    }
    this.vcpuMmapSize = check('KVM_GET_VCPU_MMAP_SIZE', ioctlInt(fd, K.KVM_GET_VCPU_MMAP_SIZE, 0));
  }

  /** The KVM_CHECK_EXTENSION answer: 0 when absent, otherwise a capability-specific positive value. */
  checkExtension(cap: number): number {
    return Math.max(0, ioctlInt(this.fd, K.KVM_CHECK_EXTENSION, cap));
  }

  /** KVM_GET_SUPPORTED_CPUID: what the host CPU and KVM can offer a guest. */
  supportedCpuid(): CpuidEntry[] {
    if (this.cpuidCache) return this.cpuidCache;
    const max = 256;
    const buf = Buffer.alloc(8 + max * K.KVM_CPUID_ENTRY2_SIZE);
    buf.writeUInt32LE(max, 0);
    check('KVM_GET_SUPPORTED_CPUID', ioctlPtr(this.fd, K.KVM_GET_SUPPORTED_CPUID, buf));
    const n = buf.readUInt32LE(0);
    const entries: CpuidEntry[] = [];
    for (let i = 0; i < n; i++) {
      const o = 8 + i * K.KVM_CPUID_ENTRY2_SIZE;
      entries.push({
        function: buf.readUInt32LE(o), index: buf.readUInt32LE(o + 4), flags: buf.readUInt32LE(o + 8),
        eax: buf.readUInt32LE(o + 12), ebx: buf.readUInt32LE(o + 16), ecx: buf.readUInt32LE(o + 20), edx: buf.readUInt32LE(o + 24),
      });
    }
    this.cpuidCache = entries;
    return entries;
  }

  createVm(): Vm {
    return new Vm(this, checkRetryingEintr('KVM_CREATE_VM', () => ioctlInt(this.fd, K.KVM_CREATE_VM, 0)));
  }

  close(): void {
    close(this.fd);
  }
}
