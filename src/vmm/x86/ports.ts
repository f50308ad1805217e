// The I/O ports through which the guest reaches the host. Every exit the VMM handles is an `out`
// to one of these; ring 0 reaches the first two from its stubs, ring 3 reaches the hypercall port
// directly (RFLAGS.IOPL = 3). Port 0x7e is avoided: KVM has a quirk that advances RIP for it.

/** The `syscall` entry stub's exit: a Linux system call is pending in the registers. */
export const PORT_SYSCALL = 0x10;
/** 0x20 + vector: the exception stub of that vector ran (vectors 0–31). */
export const PORT_EXCEPTION_BASE = 0x20;
export const EXCEPTION_VECTORS = 32;
/** The tenant API (SDK hypercalls), with the call number in EAX. */
export const PORT_HYPERCALL = 0x80;
