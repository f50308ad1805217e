/* Dumps the CPU state a program finds at _start, before any instruction of its own changes it: the
 * general registers, RFLAGS, the segment selectors, FS and GS base, and the whole XSAVE area (x87,
 * SSE, AVX and whatever else XCR0 enables). Built with -nostdlib: nothing runs before _start.
 * The pooled-shell isolation test compares this dump on a never-used VM with the dump on a VM
 * shell that another program left dirty. */
#include <stdint.h>

struct dump {
    uint64_t gpr[16];          /* rax rbx rcx rdx rsi rdi rbp rsp r8..r15, as found at _start */
    uint64_t rflags;
    uint64_t selectors[6];     /* cs ds es fs gs ss */
    uint64_t fs_base, gs_base;
    uint8_t pad[24];
    uint8_t xsave[4096] __attribute__((aligned(64)));
};

static struct dump d __attribute__((aligned(64)));

__asm__(
    ".globl _start\n"
    "_start:\n"
    "  mov %rax, d+0(%rip)\n  mov %rbx, d+8(%rip)\n  mov %rcx, d+16(%rip)\n  mov %rdx, d+24(%rip)\n"
    "  mov %rsi, d+32(%rip)\n  mov %rdi, d+40(%rip)\n  mov %rbp, d+48(%rip)\n  mov %rsp, d+56(%rip)\n"
    "  mov %r8, d+64(%rip)\n  mov %r9, d+72(%rip)\n  mov %r10, d+80(%rip)\n  mov %r11, d+88(%rip)\n"
    "  mov %r12, d+96(%rip)\n  mov %r13, d+104(%rip)\n  mov %r14, d+112(%rip)\n  mov %r15, d+120(%rip)\n"
    "  pushfq\n  popq d+128(%rip)\n"
    "  xor %eax, %eax\n"
    "  mov %cs, %ax\n  mov %rax, d+136(%rip)\n  mov %ds, %ax\n  mov %rax, d+144(%rip)\n"
    "  mov %es, %ax\n  mov %rax, d+152(%rip)\n  mov %fs, %ax\n  mov %rax, d+160(%rip)\n"
    "  mov %gs, %ax\n  mov %rax, d+168(%rip)\n  mov %ss, %ax\n  mov %rax, d+176(%rip)\n"
    "  rdfsbase %rax\n  mov %rax, d+184(%rip)\n  rdgsbase %rax\n  mov %rax, d+192(%rip)\n"
    "  mov $-1, %eax\n  mov $-1, %edx\n  xsave d+256(%rip)\n"
    "  and $-16, %rsp\n  call finish\n");

static long sys(long nr, long a, long b, long c) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

__attribute__((used)) void finish(void) {
    const uint8_t *p = (const uint8_t *)&d;
    unsigned long left = sizeof d;
    while (left > 0) {
        long n = sys(1, 1, (long)p, (long)left);
        if (n <= 0) sys(231, 2, 0, 0);
        p += n;
        left -= (unsigned long)n;
    }
    sys(231, 0, 0, 0);
}
