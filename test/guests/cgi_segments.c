/* CGI program for the segment-reset test: reports the GS base and ES selector it found at main(),
 * then changes both behind the host's back. Every request starts from the same state, so every
 * request must report the same values. */
#include <stdint.h>
#include <stdio.h>

int main(void) {
    uint64_t gs;
    uint16_t es;
    __asm__ volatile("rdgsbase %0\n mov %%es, %1" : "=r"(gs), "=r"(es));
    printf("Content-Type: text/plain\r\n\r\ngs=%llx es=%x\n", (unsigned long long)gs, es);
    fflush(stdout);
    uint64_t bogus = 0x7777000;
    __asm__ volatile("wrgsbase %0\n mov $0x2b, %%eax\n mov %%ax, %%es" : : "r"(bogus) : "rax");
    return 0;
}
