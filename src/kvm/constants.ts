// Numbers of the KVM ABI (linux/kvm.h, x86-64), under the names the kernel gives them. Checked
// against the kernel headers with a C program printing each value.

export const KVM_API_VERSION = 12;

// ioctls on /dev/kvm
export const KVM_GET_API_VERSION = 0xae00;
export const KVM_CREATE_VM = 0xae01;
export const KVM_CHECK_EXTENSION = 0xae03;
export const KVM_GET_VCPU_MMAP_SIZE = 0xae04;
export const KVM_GET_SUPPORTED_CPUID = 0xc008ae05;

// ioctls on a VM fd
export const KVM_CREATE_VCPU = 0xae41;
export const KVM_GET_DIRTY_LOG = 0x4010ae42;
export const KVM_SET_USER_MEMORY_REGION = 0x4020ae46;
export const KVM_ENABLE_CAP = 0x4068aea3;
export const KVM_CLEAR_DIRTY_LOG = 0xc018aec0;

// ioctls on a vCPU fd
export const KVM_RUN = 0xae80;
export const KVM_GET_SREGS = 0x8138ae83;
export const KVM_SET_SREGS = 0x4138ae84;
export const KVM_SET_MSRS = 0x4008ae89;
export const KVM_SET_CPUID2 = 0x4008ae90;
export const KVM_GET_XSAVE = 0x9000aea4;
export const KVM_SET_XSAVE = 0x5000aea5;
export const KVM_SET_XCRS = 0x4188aea7;
export const KVM_GET_VCPU_EVENTS = 0x8040ae9f;
export const KVM_SET_VCPU_EVENTS = 0x4040aea0;
export const KVM_GET_DEBUGREGS = 0x8080aea1;
export const KVM_SET_DEBUGREGS = 0x4080aea2;

// capabilities (KVM_CHECK_EXTENSION)
export const KVM_CAP_USER_MEMORY = 0x3;
export const KVM_CAP_EXT_CPUID = 0x7;
export const KVM_CAP_VCPU_EVENTS = 0x29;
export const KVM_CAP_DEBUGREGS = 0x32;
export const KVM_CAP_XSAVE = 0x37;
export const KVM_CAP_XCRS = 0x38;
export const KVM_CAP_SYNC_REGS = 0x4a;
export const KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 = 0xa8;

export const KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE = 0x1;
export const KVM_DIRTY_LOG_INITIALLY_SET = 0x2;
export const KVM_MEM_LOG_DIRTY_PAGES = 0x1;

// exit reasons (kvm_run.exit_reason)
export const KVM_EXIT_IO = 2;
export const KVM_EXIT_HLT = 5;
export const KVM_EXIT_MMIO = 6;
export const KVM_EXIT_SHUTDOWN = 8;
export const KVM_EXIT_FAIL_ENTRY = 9;
export const KVM_EXIT_INTR = 10;
export const KVM_EXIT_INTERNAL_ERROR = 17;


// kvm_run.kvm_valid_regs / kvm_dirty_regs bits
export const KVM_SYNC_X86_REGS = 0x1;
export const KVM_SYNC_X86_SREGS = 0x2;

/** Byte offsets inside the mmapped `struct kvm_run`. */
export const RUN = {
  immediate_exit: 1,
  exit_reason: 8,
  io_direction: 32,
  io_size: 33,
  io_port: 34,
  io_count: 36,
  io_data_offset: 40,
  fail_entry_reason: 32,
  internal_suberror: 32,
  kvm_valid_regs: 288,
  kvm_dirty_regs: 296,
  sync_regs: 304,
  sync_sregs: 304 + 144,
} as const;

/** Byte offsets of the 64-bit fields of `struct kvm_regs` (144 bytes). */
export const REGS = {
  rax: 0, rbx: 8, rcx: 16, rdx: 24, rsi: 32, rdi: 40, rsp: 48, rbp: 56,
  r8: 64, r9: 72, r10: 80, r11: 88, r12: 96, r13: 104, r14: 112, r15: 120,
  rip: 128, rflags: 136,
} as const;
export type RegName = keyof typeof REGS;
export const KVM_REGS_SIZE = 144;

/** `struct kvm_sregs` (312 bytes): eight 24-byte `kvm_segment`s, two 16-byte `kvm_dtable`s, then control registers. */
export const SREGS = {
  cs: 0, ds: 24, es: 48, fs: 72, gs: 96, ss: 120, tr: 144, ldt: 168,
  gdt: 192, idt: 208,
  cr0: 224, cr2: 232, cr3: 240, cr4: 248, cr8: 256, efer: 264, apic_base: 272,
  interrupt_bitmap: 280,
} as const;
export const KVM_SREGS_SIZE = 312;

export const KVM_XSAVE_SIZE = 4096;
export const KVM_XCRS_SIZE = 392;
export const KVM_VCPU_EVENTS_SIZE = 64;
export const KVM_DEBUGREGS_SIZE = 128;
export const KVM_CPUID_ENTRY2_SIZE = 40;
