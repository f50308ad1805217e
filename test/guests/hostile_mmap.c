/* mmap, munmap, mprotect and madvise as a hostile program calls them: huge lengths, hints and
 * MAP_FIXED at the edge of the user address space, MAP_FIXED over a reservation, protections
 * changed over holes, partial unmaps. Raw system calls; every result is printed as a number
 * (-errno on failure) or a yes/no that does not depend on where the kernel put a mapping, so
 * the output compares with Linux's. Whether a page can be read or written is asked of the kernel
 * without touching it: rt_sigprocmask(SIG_BLOCK) reads a signal set there (EFAULT when it
 * cannot; blocking signals changes nothing here), clock_gettime writes a timespec.
 *   hostile_mmap            the calls above
 *   hostile_mmap guard      touches a PROT_NONE guard page between two read-write pages
 *   hostile_mmap reserved   touches a page of a PROT_NONE reservation
 *   hostile_mmap unmapped   touches a page unmapped from the middle of a large mapping
 *   hostile_mmap readonly   writes a page made read-only
 *   hostile_mmap edge       touches the page past a MAP_FIXED read-write part of a reservation
 *   hostile_mmap exec       asks for executable anonymous memory (tinyedge only: EACCES by default)
 *   hostile_mmap big        reserves 16 GiB and touches pages far apart, then fills 40 MiB (tinyedge --memory 64MiB)
 * Each touching mode prints what it is about to do, then faults. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#define GiB (1ul << 30)
#define MiB (1ul << 20)
#define PAGE 4096ul
#define TASK_SIZE 0x7ffffffff000ul
#define NONE_FLAGS (MAP_PRIVATE | MAP_ANONYMOUS)

static long sys(long n, long a, long b, long c, long d, long e, long f) {
    long r = syscall(n, a, b, c, d, e, f);
    return r == -1 ? -errno : r;
}
static long map(void *at, unsigned long len, int prot, int flags) { return sys(SYS_mmap, (long)at, (long)len, prot, flags, -1, 0); }

/* "rw", "r-" or "--": what the kernel lets a system call do at p. */
static const char *probe(void *p) {
    static char out[3];
    out[0] = sys(SYS_rt_sigprocmask, SIG_BLOCK, (long)p, 0, 8, 0, 0) == -EFAULT ? '-' : 'r';
    out[1] = sys(SYS_clock_gettime, CLOCK_MONOTONIC, (long)p, 0, 0, 0, 0) == -EFAULT ? '-' : 'w';
    out[2] = 0;
    return out;
}

static const char *yes(int c) { return c ? "yes" : "no"; }

static int calls(void) {
    long res = map(NULL, 16 * GiB, PROT_NONE, NONE_FLAGS);
    printf("reserve 16 GiB PROT_NONE: %s\n", yes(res > 0));
    char *r = (char *)res;
    printf("probe reservation start, middle, last page: %s", probe(r));
    printf(" %s", probe(r + 8 * GiB));
    printf(" %s\n", probe(r + 16 * GiB - PAGE));
    printf("mmap(NULL, SIZE_MAX) = %ld\n", map(NULL, SIZE_MAX, PROT_READ, NONE_FLAGS));
    printf("mmap(NULL, 1<<47, PROT_NONE) = %ld\n", map(NULL, 1ul << 47, PROT_NONE, NONE_FLAGS));
    printf("mmap(NULL, TASK_SIZE + 1, PROT_NONE) = %ld\n", map(NULL, TASK_SIZE + 1, PROT_NONE, NONE_FLAGS));
    printf("mmap(NULL, 0) = %ld\n", map(NULL, 0, PROT_READ, NONE_FLAGS));
    printf("mmap(FIXED at unaligned) = %ld\n", map(r + 1, PAGE, PROT_READ, NONE_FLAGS | MAP_FIXED));

    /* The top of the user half. */
    char *top = (char *)(TASK_SIZE - 2 * PAGE);
    printf("mmap(FIXED_NOREPLACE at TASK_SIZE - 2 pages, 2 pages) at it: %s\n", yes(map(top, 2 * PAGE, PROT_READ | PROT_WRITE, NONE_FLAGS | MAP_FIXED_NOREPLACE) == (long)top));
    printf("  probe: %s\n", probe(top + PAGE));
    printf("mmap(FIXED_NOREPLACE at TASK_SIZE - 1 page, 2 pages) = %ld\n", map(top + PAGE, 2 * PAGE, PROT_READ, NONE_FLAGS | MAP_FIXED_NOREPLACE));
    printf("mmap(FIXED at TASK_SIZE, 1 page) = %ld\n", map((void *)TASK_SIZE, PAGE, PROT_READ, NONE_FLAGS | MAP_FIXED));
    printf("mmap(FIXED_NOREPLACE over the top pages) = %ld\n", map(top, PAGE, PROT_READ, NONE_FLAGS | MAP_FIXED_NOREPLACE));
    long hinted = map(top + PAGE, 2 * PAGE, PROT_READ, NONE_FLAGS);
    printf("mmap(hint TASK_SIZE - 1 page, 2 pages) placed elsewhere, below TASK_SIZE: %s\n", yes(hinted > 0 && hinted != (long)(top + PAGE) && hinted + 2 * PAGE <= (long)TASK_SIZE));
    char *free_hint = (char *)(TASK_SIZE - 64 * PAGE);
    printf("mmap(hint at a free page near the top) at the hint: %s\n", yes(map(free_hint, PAGE, PROT_READ, NONE_FLAGS) == (long)free_hint));
    printf("munmap(top pages, hinted, free hint) = %ld %ld %ld\n", sys(SYS_munmap, (long)top, 2 * PAGE, 0, 0, 0, 0),
           sys(SYS_munmap, hinted, 2 * PAGE, 0, 0, 0, 0), sys(SYS_munmap, (long)free_hint, PAGE, 0, 0, 0, 0));
    printf("mmap(hint in the kernel half) placed below TASK_SIZE: %s\n", yes((unsigned long)map((void *)0xffff800000000000ul, PAGE, PROT_READ, NONE_FLAGS) < TASK_SIZE));

    /* MAP_FIXED read-write over a part of the reservation, as Go commits its heap. */
    char *rw = r + 4 * GiB;
    printf("mmap(FIXED_NOREPLACE over the reservation) = %ld\n", map(rw, 4 * MiB, PROT_READ | PROT_WRITE, NONE_FLAGS | MAP_FIXED_NOREPLACE));
    printf("mmap(FIXED RW over 4 MiB of the reservation) at it: %s\n", yes(map(rw, 4 * MiB, PROT_READ | PROT_WRITE, NONE_FLAGS | MAP_FIXED) == (long)rw));
    printf("  zero-filled: %s\n", yes(rw[0] == 0 && rw[4 * MiB - 1] == 0));
    /* Each page's last byte: the probes write the first 16 bytes of the pages they look at. */
    for (unsigned long i = 0; i < 4 * MiB; i += PAGE) rw[i + PAGE - 1] = (char)(i >> 12);
    int same = 1;
    for (unsigned long i = 0; i < 4 * MiB; i += PAGE) same &= rw[i + PAGE - 1] == (char)(i >> 12);
    printf("  every page written and read back: %s\n", yes(same));
    printf("  probe first, last, before, after: %s", probe(rw + PAGE));
    printf(" %s", probe(rw + 4 * MiB - PAGE));
    printf(" %s", probe(rw - PAGE));
    printf(" %s\n", probe(rw + 4 * MiB));

    /* mprotect: pages of the reservation, unmapped pages, holes. */
    printf("mprotect(2 pages in the middle of the reservation, RW) = %ld\n", sys(SYS_mprotect, (long)(r + 8 * GiB), 2 * PAGE, PROT_READ | PROT_WRITE, 0, 0, 0));
    r[8 * GiB] = 'x';
    printf("  written and read back: %s, probe %s\n", yes(r[8 * GiB] == 'x'), probe(r + 8 * GiB + PAGE));
    long ret = sys(SYS_mprotect, (long)(r + 8 * GiB), 2 * PAGE, PROT_READ, 0, 0, 0);
    printf("mprotect(them, PROT_READ) = %ld, probe %s\n", ret, probe(r + 8 * GiB));
    printf("mprotect(unaligned) = %ld\n", sys(SYS_mprotect, (long)(rw + 1), PAGE, PROT_READ, 0, 0, 0));
    printf("mprotect(bad bits) = %ld\n", sys(SYS_mprotect, (long)rw, PAGE, 0x40, 0, 0, 0));
    printf("munmap(1 MiB in the middle of the RW part) = %ld\n", sys(SYS_munmap, (long)(rw + MiB), MiB, 0, 0, 0, 0));
    printf("  data on both sides kept: %s\n", yes(rw[MiB - 1] == (char)((MiB - PAGE) >> 12) && rw[3 * MiB - 1] == (char)((3 * MiB - PAGE) >> 12)));
    printf("  probe before, in, after the hole: %s", probe(rw + MiB - PAGE));
    printf(" %s", probe(rw + MiB));
    printf(" %s\n", probe(rw + 2 * MiB));
    printf("mprotect(in the hole) = %ld\n", sys(SYS_mprotect, (long)(rw + MiB), PAGE, PROT_READ, 0, 0, 0));
    printf("mprotect(from before the hole into it, PROT_READ) = %ld\n", sys(SYS_mprotect, (long)(rw + MiB - PAGE), 2 * PAGE, PROT_READ, 0, 0, 0));
    printf("  the page before the hole changed: %s\n", probe(rw + MiB - PAGE));
    printf("munmap(the hole again) = %ld\n", sys(SYS_munmap, (long)(rw + MiB), MiB, 0, 0, 0, 0));
    printf("munmap(unaligned) = %ld, munmap(length 0) = %ld\n", sys(SYS_munmap, (long)(rw + 1), PAGE, 0, 0, 0, 0), sys(SYS_munmap, (long)rw, 0, 0, 0, 0, 0));
    printf("mmap(FIXED RW over the hole) zero-filled: %s\n", yes(map(rw + MiB, MiB, PROT_READ | PROT_WRITE, NONE_FLAGS | MAP_FIXED) == (long)(rw + MiB) && rw[MiB] == 0));

    /* madvise(MADV_DONTNEED): private anonymous pages read back zeros. */
    rw[3 * MiB] = 'd';
    ret = sys(SYS_madvise, (long)(rw + 3 * MiB), PAGE, MADV_DONTNEED, 0, 0, 0);
    printf("madvise(DONTNEED) = %ld, reads zero: %s, ", ret, yes(rw[3 * MiB] == 0 && rw[3 * MiB + PAGE - 1] == 0));
    printf("the next page kept: %s\n", yes(rw[3 * MiB + 2 * PAGE - 1] == (char)((3 * MiB + PAGE) >> 12)));
    printf("madvise(range over PROT_NONE and a hole) = %ld\n", sys(SYS_madvise, (long)(rw - PAGE), 2 * PAGE, MADV_DONTNEED, 0, 0, 0));
    sys(SYS_munmap, (long)(rw + 4 * MiB), PAGE, 0, 0, 0, 0);
    printf("madvise(over an unmapped page) = %ld\n", sys(SYS_madvise, (long)(rw + 4 * MiB - PAGE), 2 * PAGE, MADV_DONTNEED, 0, 0, 0));

    /* A small mapping inside guest RAM (on tinyedge): guard pages and read-only pages. */
    char *small = (char *)map(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, NONE_FLAGS);
    ret = sys(SYS_mprotect, (long)(small + PAGE), PAGE, PROT_NONE, 0, 0, 0);
    printf("mprotect(middle of 3 pages, PROT_NONE) = %ld, probes %s", ret, probe(small));
    printf(" %s", probe(small + PAGE));
    printf(" %s\n", probe(small + 2 * PAGE));
    ret = sys(SYS_mprotect, (long)small, 3 * PAGE, PROT_READ, 0, 0, 0);
    printf("mprotect(all 3, PROT_READ) = %ld, probes %s", ret, probe(small));
    printf(" %s\n", probe(small + PAGE));
    printf("munmap(all 3) = %ld\n", sys(SYS_munmap, (long)small, 3 * PAGE, 0, 0, 0, 0));
    ret = sys(SYS_munmap, res, 16 * GiB, 0, 0, 0, 0);
    printf("munmap(the whole reservation) = %ld, probe %s\n", ret, probe(r + 8 * GiB));
    printf("still running\n");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *mode = argc > 1 ? argv[1] : "calls";
    if (strcmp(mode, "calls") == 0) return calls();
    if (strcmp(mode, "guard") == 0) {
        char *p = (char *)map(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, NONE_FLAGS);
        p[0] = p[2 * PAGE] = 1;
        printf("guard page: mprotect = %ld; reading it\n", sys(SYS_mprotect, (long)(p + PAGE), PAGE, PROT_NONE, 0, 0, 0));
        return *(volatile char *)(p + PAGE);
    }
    if (strcmp(mode, "reserved") == 0) {
        char *r = (char *)map(NULL, 16 * GiB, PROT_NONE, NONE_FLAGS);
        printf("reserved: %s; reading its middle\n", yes(r != (char *)-ENOMEM));
        return *(volatile char *)(r + 8 * GiB);
    }
    if (strcmp(mode, "unmapped") == 0) {
        char *p = (char *)map(NULL, 8 * MiB, PROT_READ | PROT_WRITE, NONE_FLAGS);
        memset(p, 7, 8 * MiB);
        printf("munmap(a page in the middle) = %ld; reading it\n", sys(SYS_munmap, (long)(p + 4 * MiB), PAGE, 0, 0, 0, 0));
        return *(volatile char *)(p + 4 * MiB);
    }
    if (strcmp(mode, "readonly") == 0) {
        char *p = (char *)map(NULL, 8 * MiB, PROT_READ | PROT_WRITE, NONE_FLAGS);
        p[5 * MiB] = 1;
        printf("mprotect(PROT_READ) = %ld; read %d; writing it\n", sys(SYS_mprotect, (long)(p + 5 * MiB), PAGE, PROT_READ, 0, 0, 0), p[5 * MiB]);
        *(volatile char *)(p + 5 * MiB) = 2;
        return 0;
    }
    if (strcmp(mode, "edge") == 0) {
        char *r = (char *)map(NULL, 64 * MiB, PROT_NONE, NONE_FLAGS);
        long rw = map(r, 4 * MiB, PROT_READ | PROT_WRITE, NONE_FLAGS | MAP_FIXED);
        memset(r, 1, 4 * MiB);
        printf("MAP_FIXED RW part written: %s; reading the page after it\n", yes(rw == (long)r));
        return *(volatile char *)(r + 4 * MiB);
    }
    if (strcmp(mode, "exec") == 0) {
        long rwx = map(NULL, PAGE, PROT_READ | PROT_WRITE | PROT_EXEC, NONE_FLAGS);
        printf("mmap(RWX anonymous) %s\n", rwx > 0 ? "mapped" : rwx == -EACCES ? "= -EACCES" : "failed otherwise");
        long p = map(NULL, 16 * MiB, PROT_READ | PROT_WRITE, NONE_FLAGS);
        static const unsigned char code[] = { 0xb8, 42, 0, 0, 0, 0xc3 }; /* mov eax, 42; ret */
        memcpy((char *)p + 8 * MiB, code, sizeof code);
        long r = sys(SYS_mprotect, p + 8 * MiB, PAGE, PROT_READ | PROT_EXEC, 0, 0, 0);
        printf("mprotect(anonymous, RX) = %ld\n", r);
        if (r == 0) printf("  code written there returns %d\n", ((int (*)(void))(p + 8 * MiB))());
        if (rwx > 0) {
            memcpy((char *)rwx, code, sizeof code);
            printf("  code in the RWX page returns %d\n", ((int (*)(void))rwx)());
        }
        extern char __executable_start[];
        long text = ((long)main) & ~(long)(PAGE - 1);
        (void)__executable_start;
        printf("mprotect(own code, RX) = %ld\n", sys(SYS_mprotect, text, PAGE, PROT_READ | PROT_EXEC, 0, 0, 0));
        return 0;
    }
    if (strcmp(mode, "big") == 0) {
        struct sysinfo before, after;
        sysinfo(&before);
        char *r = (char *)map(NULL, 16 * GiB, PROT_NONE, NONE_FLAGS);
        int ok = r != (char *)-ENOMEM;
        for (int i = 0; i < 8; i++) {
            char *page = r + (unsigned long)i * 2 * GiB + 12345 * PAGE;
            ok &= sys(SYS_mprotect, (long)page, PAGE, PROT_READ | PROT_WRITE, 0, 0, 0) == 0;
            page[0] = (char)i;
            ok &= page[0] == (char)i;
        }
        sysinfo(&after);
        printf("16 GiB reserved, 8 pages 2 GiB apart touched: %s\n", yes(ok));
        printf("free memory went down by less than 1 MiB: %s\n", yes(before.freeram - after.freeram < MiB));
        char *fill = (char *)map(NULL, 40 * MiB, PROT_READ | PROT_WRITE, NONE_FLAGS);
        ok = fill != (char *)-ENOMEM;
        if (ok) memset(fill, 0x5a, 40 * MiB);
        printf("then 40 MiB mapped and filled: %s\n", yes(ok && fill[40 * MiB - 1] == 0x5a));
        return 0;
    }
    fprintf(stderr, "hostile_mmap: unknown mode %s\n", mode);
    return 2;
}
