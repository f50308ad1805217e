/* Leaves every register class a ring-3 program can reach in a non-default state, then exits (or,
 * with the argument "wait", stops in the SDK's wait): vector registers ymm0-15, MXCSR, the x87
 * control word and register stack, DS/ES selectors, FS and GS base. A program booted later on the
 * same pooled VM shell must see none of it. */
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

int main(int argc, char **argv) {
    (void)argc; (void)argv;
    static const uint8_t pattern[32] = { [0 ... 31] = 0xa5 };
    __asm__ volatile(
        "vmovdqu %0, %%ymm0\n vmovdqu %0, %%ymm1\n vmovdqu %0, %%ymm2\n vmovdqu %0, %%ymm3\n"
        "vmovdqu %0, %%ymm4\n vmovdqu %0, %%ymm5\n vmovdqu %0, %%ymm6\n vmovdqu %0, %%ymm7\n"
        "vmovdqu %0, %%ymm8\n vmovdqu %0, %%ymm9\n vmovdqu %0, %%ymm10\n vmovdqu %0, %%ymm11\n"
        "vmovdqu %0, %%ymm12\n vmovdqu %0, %%ymm13\n vmovdqu %0, %%ymm14\n vmovdqu %0, %%ymm15\n"
        : : "m"(pattern));
    uint32_t mxcsr = 0x9fc0 | 0x3f; /* FTZ, DAZ, round toward zero, every exception flag */
    uint16_t fcw = 0x0c7f;           /* x87: round toward zero, 24-bit precision */
    __asm__ volatile("ldmxcsr %0\n fldcw %1\n fld1\n fldpi\n fldl2e\n" : : "m"(mxcsr), "m"(fcw));
    uint64_t base = 0x12345000;
    __asm__ volatile("wrgsbase %0\n mov $0x2b, %%eax\n mov %%ax, %%es\n mov %%ax, %%ds\n" : : "r"(base) : "rax");
    /* exit_group straight away: no library code between here and the exit touches vector state. */
    __asm__ volatile("mov $231, %%eax\n xor %%edi, %%edi\n syscall\n" : : : "rax", "rdi", "rcx", "r11", "memory");
    return 0;
}
