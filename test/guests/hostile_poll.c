/* poll and ppoll as a hostile program calls them: stdio with no events (what Rust's std start-up
 * asks), closed and negative fds, a regular file, counts past RLIMIT_NOFILE, bad pointers for
 * the array, the timespec and the signal mask, invalid timespecs, a wrong sigset size, garbage in
 * the upper half of int arguments. Every call is raw and prints "call = result [revents...]", so
 * the output compares with Linux's: run natively with stdin from /dev/null and stdout a pipe, it
 * prints the same lines. `hostile_poll <path of a readable regular file>`. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define HI ((long)0xffffffff00000000UL) /* garbage in the upper half of an int argument */

static long show(const char *call, long r, struct pollfd *fds, int n) {
    long v = r == -1 ? -errno : r;
    printf("%s = %ld", call, v);
    for (int i = 0; i < n; i++) printf(" %#x", (unsigned)(unsigned short)fds[i].revents);
    printf("\n");
    return v;
}

static double ms_since(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0->tv_sec) * 1e3 + (t1.tv_nsec - t0->tv_nsec) / 1e6;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: hostile_poll <file>\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    int file = open(argv[1], O_RDONLY);
    struct rlimit nofile;
    getrlimit(RLIMIT_NOFILE, &nofile);

    struct pollfd stdio[3] = { { 0, 0, -1 }, { 1, 0, -1 }, { 2, 0, -1 } };
    show("poll(stdio, no events, 0)", syscall(SYS_poll, stdio, 3L, 0L), stdio, 3);
    struct pollfd in = { 0, POLLIN, 0 };
    show("poll(stdin /dev/null, POLLIN)", syscall(SYS_poll, &in, 1L, 0L), &in, 1);
    struct pollfd out = { 1, POLLOUT | POLLIN, 0 };
    show("poll(stdout, POLLOUT|POLLIN, -1)", syscall(SYS_poll, &out, 1L, -1L), &out, 1);
    struct pollfd f[2] = { { file, POLLIN | POLLOUT | POLLPRI, 0 }, { file, (short)0xffff, 0 } };
    show("poll(file, IN|OUT|PRI; all bits)", syscall(SYS_poll, f, 2L, 0L), f, 2);
    struct pollfd closed[3] = { { 77, POLLIN, 0 }, { -1, POLLIN, 0x55 }, { (int)0x80000000, POLLIN, 0 } };
    show("poll(closed 77, -1, INT_MIN)", syscall(SYS_poll, closed, 3L, 0L), closed, 3);
    struct pollfd none = { -5, POLLIN, 0 };
    show("poll(-5 only, HI | 0 timeout)", syscall(SYS_poll, &none, 1L, HI | 0L), &none, 1);
    show("poll(fds, HI | 1)", syscall(SYS_poll, &out, HI | 1L, 0L), &out, 1);

    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long r = syscall(SYS_poll, 0L, 0L, 30L);
    printf("poll(NULL, 0, 30) = %ld, slept >= 30 ms: %s\n", r, ms_since(&t0) >= 29 ? "yes" : "no");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    r = syscall(SYS_poll, &none, 1L, 20L);
    printf("poll(-5 only, 20) = %ld, slept >= 20 ms: %s\n", r, ms_since(&t0) >= 19 ? "yes" : "no");

    /* Counts: the limit is RLIMIT_NOFILE; past it EINVAL before the array is read. */
    show("poll(NULL, RLIMIT_NOFILE + 1)", syscall(SYS_poll, 0L, (long)nofile.rlim_cur + 1, 0L), 0, 0);
    show("poll(NULL, 0xffffffff)", syscall(SYS_poll, 0L, 0xffffffffL, 0L), 0, 0);
    show("poll(NULL, 1)", syscall(SYS_poll, 0L, 1L, 0L), 0, 0);
    show("poll(1<<60, 1)", syscall(SYS_poll, 1L << 60, 1L, 0L), 0, 0);
    show("poll(-8, 1)", syscall(SYS_poll, -8L, 1L, 0L), 0, 0);

    /* ppoll: timespec first (EFAULT, then EINVAL), then the mask, then the array. */
    struct timespec zero = { 0, 0 }, bad_nsec = { 0, 1000000000 }, negative = { -1, 0 }, neg_nsec = { 0, -1 };
    sigset_t mask;
    sigemptyset(&mask);
    show("ppoll(stdio, {0,0}, NULL)", syscall(SYS_ppoll, stdio, 3L, &zero, 0L, 0L), stdio, 3);
    show("ppoll(stdio, NULL, mask, 8)", syscall(SYS_ppoll, &out, 1L, 0L, &mask, 8L), &out, 1);
    show("ppoll({0, 1e9})", syscall(SYS_ppoll, &out, 1L, &bad_nsec, 0L, 0L), 0, 0);
    show("ppoll({-1, 0})", syscall(SYS_ppoll, &out, 1L, &negative, 0L, 0L), 0, 0);
    show("ppoll({0, -1})", syscall(SYS_ppoll, &out, 1L, &neg_nsec, 0L, 0L), 0, 0);
    show("ppoll(tsp 1<<60)", syscall(SYS_ppoll, &out, 1L, 1L << 60, 0L, 0L), 0, 0);
    show("ppoll(mask, sigsetsize 16)", syscall(SYS_ppoll, &out, 1L, &zero, &mask, 16L), 0, 0);
    show("ppoll(mask 1<<60, 8)", syscall(SYS_ppoll, &out, 1L, &zero, 1L << 60, 8L), 0, 0);
    show("ppoll(NULL mask, sigsetsize 99)", syscall(SYS_ppoll, &out, 1L, &zero, 0L, 99L), &out, 1);
    show("ppoll(nfds huge, tsp 1<<60)", syscall(SYS_ppoll, &out, 0xffffffffL, 1L << 60, 0L, 0L), 0, 0);
    show("ppoll(nfds huge, {0,0})", syscall(SYS_ppoll, &out, 0xffffffffL, &zero, 0L, 0L), 0, 0);
    struct timespec wait = { 0, 20 * 1000 * 1000 };
    clock_gettime(CLOCK_MONOTONIC, &t0);
    r = syscall(SYS_ppoll, &none, 1L, &wait, 0L, 0L);
    printf("ppoll(-5 only, 20 ms) = %ld, slept >= 20 ms: %s, timespec left {%ld, %ld}\n", r,
           ms_since(&t0) >= 19 ? "yes" : "no", (long)wait.tv_sec, wait.tv_nsec);
    struct timespec long_wait = { 5, 0 };
    r = syscall(SYS_ppoll, &out, 1L, &long_wait, 0L, 0L);
    printf("ppoll(stdout ready, 5 s) = %ld, timespec left more than 4 s: %s\n", r,
           long_wait.tv_sec >= 4 ? "yes" : "no");
    printf("still running\n");
    return 0;
}
