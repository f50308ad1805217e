// The KVM capabilities tinyedge relies on, checked when /dev/kvm is opened (as Firecracker's
// vstate/kvm.rs does), so that a host lacking one is told which and what for, instead of failing
// later with a bare EINVAL from whichever ioctl needed it.
import * as K from './constants.ts';

/** A capability as KVM_CHECK_EXTENSION reports it, and why tinyedge needs it. */
export interface Capability {
  /** The kernel's name for it. */
  readonly name: string;
  readonly number: number;
  /**
   * For a capability whose answer is a set of flags: the flags tinyedge uses, by the kernel's
   * names. Otherwise any positive answer will do.
   */
  readonly flags?: Readonly<Record<string, number>>;
  readonly neededFor: string;
}

export const REQUIRED_CAPABILITIES: readonly Capability[] = [
  { name: 'KVM_CAP_USER_MEMORY', number: K.KVM_CAP_USER_MEMORY, neededFor: 'backing guest memory with host mappings (KVM_SET_USER_MEMORY_REGION)' },
  { name: 'KVM_CAP_EXT_CPUID', number: K.KVM_CAP_EXT_CPUID, neededFor: "giving guests the host CPU's features (KVM_GET_SUPPORTED_CPUID, KVM_SET_CPUID2)" },
  { name: 'KVM_CAP_VCPU_EVENTS', number: K.KVM_CAP_VCPU_EVENTS, neededFor: 'clearing pending events from a pooled vCPU before it is reused (KVM_SET_VCPU_EVENTS)' },
  { name: 'KVM_CAP_DEBUGREGS', number: K.KVM_CAP_DEBUGREGS, neededFor: 'clearing the debug registers of a pooled vCPU before it is reused (KVM_SET_DEBUGREGS)' },
  { name: 'KVM_CAP_XSAVE', number: K.KVM_CAP_XSAVE, neededFor: 'saving and restoring x87, SSE and AVX state in snapshots (KVM_GET_XSAVE, KVM_SET_XSAVE)' },
  { name: 'KVM_CAP_XCRS', number: K.KVM_CAP_XCRS, neededFor: 'letting guests use AVX and AVX-512 (XCR0, KVM_SET_XCRS)' },
  {
    name: 'KVM_CAP_SYNC_REGS',
    number: K.KVM_CAP_SYNC_REGS,
    flags: { KVM_SYNC_X86_REGS: K.KVM_SYNC_X86_REGS, KVM_SYNC_X86_SREGS: K.KVM_SYNC_X86_SREGS },
    neededFor: 'reading and writing registers in kvm_run at every exit without an ioctl, and reloading segments on reset',
  },
  {
    name: 'KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2',
    number: K.KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
    flags: { KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE: K.KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE },
    neededFor: 'resetting request VMs by copying back only the pages they dirtied (KVM_CLEAR_DIRTY_LOG)',
  },
];

/**
 * Why a KVM whose KVM_CHECK_EXTENSION answers as `extension` does (0 when absent) cannot run
 * tinyedge: the first required capability it lacks, or lacks a flag of, named with what it is
 * needed for. Undefined when it has them all.
 */
export function missingCapability(extension: (cap: number) => number): string | undefined {
  for (const cap of REQUIRED_CAPABILITIES) {
    const answer = extension(cap.number);
    if (answer <= 0) return `this host's KVM lacks ${cap.name}, which tinyedge needs for ${cap.neededFor}`;
    const absent = Object.entries(cap.flags ?? {}).filter(([, bit]) => (answer & bit) === 0).map(([flag]) => flag);
    if (absent.length > 0) {
      return `this host's KVM offers ${cap.name} without ${absent.join(' and ')}, which tinyedge needs for ${cap.neededFor}`;
    }
  }
  return undefined;
}
