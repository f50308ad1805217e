/* Pipes, eventfds and epoll as a hostile program uses them: bad flags, bad pointers, the wrong
 * ends, full and empty pipes, closed ends, counters at their limits, epoll_ctl and epoll_wait with
 * every bad argument, level-, edge-triggered and one-shot interests, and a thread woken through an
 * eventfd. Raw system calls print "call = result" (-errno on failure), so the output compares with
 * Linux's: run natively with stdin an empty pipe, and the path of a regular file as argument, it
 * prints the same lines. SIGPIPE is ignored, so a write without readers is EPIPE, as in tinyedge. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long sys(long n, long a, long b, long c, long d, long e, long f) {
    long r = syscall(n, a, b, c, d, e, f);
    return r == -1 ? -errno : r;
}
/* A raw call with up to six arguments, each passed as a whole 64-bit register. */
#define SYS_(n, a, b, c, d, e, f, ...) sys(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))
#define SYS0(...) SYS_(__VA_ARGS__, 0, 0, 0, 0, 0, 0)
static long show(const char *what, long r) {
    printf("%s = %ld\n", what, r);
    return r;
}
static double ms_since(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0->tv_sec) * 1e3 + (t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* epoll_wait with a zero timeout, printing what it reports. */
static void waitshow(const char *what, int ep) {
    struct epoll_event ev[4];
    long n = sys(SYS_epoll_wait, ep, (long)ev, 4, 0, 0, 0);
    printf("%s = %ld", what, n);
    for (long i = 0; i < n; i++) printf(" {%#x, %llu}", ev[i].events, (unsigned long long)ev[i].data.u64);
    printf("\n");
}

static int counter;
static void *poster(void *arg) {
    struct timespec d = { 0, 20 * 1000 * 1000 };
    nanosleep(&d, NULL);
    uint64_t one = 1;
    write(counter, &one, 8);
    return arg;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGPIPE, SIG_IGN);
    int fds[2];
    char buf[128];

    /* pipe2 */
    show("pipe2(bad flags)", SYS0(SYS_pipe2, (long)fds, 0x1));
    show("pipe2(NULL)", SYS0(SYS_pipe2, 0L, 0L));
    show("pipe2(1<<60)", SYS0(SYS_pipe2, 1L << 60, 0L));
    show("pipe2(O_NONBLOCK|O_CLOEXEC)", SYS0(SYS_pipe2, (long)fds, O_NONBLOCK | O_CLOEXEC));
    int r = fds[0], w = fds[1];
    printf("fds are the lowest free: %s\n", r == 3 && w == 4 ? "yes" : "no");
    show("write(w, hello)", SYS0(SYS_write, w, (long)"hello", 5));
    show("read(r, 3)", SYS0(SYS_read, r, (long)buf, 3));
    int avail = -1;
    show("ioctl(r, FIONREAD)", SYS0(SYS_ioctl, r, FIONREAD, (long)&avail));
    printf("FIONREAD says %d\n", avail);
    show("read(r, bad buffer)", SYS0(SYS_read, r, 0x10L, 10));
    show("read(r, 10)", SYS0(SYS_read, r, (long)buf + 3, 10));
    printf("bytes: %.5s\n", buf);
    show("read(r) empty, O_NONBLOCK", SYS0(SYS_read, r, (long)buf, 10));
    show("read(w)", SYS0(SYS_read, w, (long)buf, 10));
    show("write(r)", SYS0(SYS_write, r, (long)buf, 10));
    show("lseek(r)", SYS0(SYS_lseek, r, 0, SEEK_SET));
    show("pread64(r)", SYS0(SYS_pread64, r, (long)buf, 1, 0));
    struct stat st;
    show("fstat(r)", SYS0(SYS_fstat, r, (long)&st));
    printf("S_ISFIFO: %s\n", S_ISFIFO(st.st_mode) ? "yes" : "no");
    show("fcntl(r, F_GETFL) & (O_ACCMODE|O_NONBLOCK)", SYS0(SYS_fcntl, r, F_GETFL, 0) & (O_ACCMODE | O_NONBLOCK));
    show("fcntl(w, F_GETFL) & (O_ACCMODE|O_NONBLOCK)", SYS0(SYS_fcntl, w, F_GETFL, 0) & (O_ACCMODE | O_NONBLOCK));
    show("fcntl(w, F_GETPIPE_SZ)", SYS0(SYS_fcntl, w, F_GETPIPE_SZ, 0));
    static char big[70000];
    show("write(w, 70000) non-blocking", SYS0(SYS_write, w, (long)big, sizeof big));
    show("write(w, 1) full", SYS0(SYS_write, w, (long)big, 1));
    show("read(r, 4096)", SYS0(SYS_read, r, (long)big, 4096));
    show("write(w, 4097) after 4096 freed", SYS0(SYS_write, w, (long)big, 4097));
    show("write(w, 4096) after 4096 freed", SYS0(SYS_write, w, (long)big, 4096));

    /* epoll */
    show("epoll_create1(bad flags)", SYS0(SYS_epoll_create1, 1));
    show("epoll_create(0)", SYS0(SYS_epoll_create, 0));
    int ep = (int)SYS0(SYS_epoll_create1, EPOLL_CLOEXEC);
    printf("epoll fd: %s\n", ep > w ? "next" : "other");
    int file = open(argv[1], O_RDONLY);
    struct epoll_event e = { EPOLLIN, { .u64 = 7 } };
    show("epoll_ctl(bad epfd)", SYS0(SYS_epoll_ctl, 99, EPOLL_CTL_ADD, r, (long)&e));
    show("epoll_ctl(bad fd)", SYS0(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, 99, (long)&e));
    show("epoll_ctl(regular file)", SYS0(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, file, (long)&e));
    show("epoll_ctl(itself)", SYS0(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, ep, (long)&e));
    show("epoll_ctl(epfd a pipe)", SYS0(SYS_epoll_ctl, r, EPOLL_CTL_ADD, w, (long)&e));
    show("epoll_ctl(ADD, bad event)", SYS0(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, r, 1L << 60));
    show("epoll_ctl(op 7)", SYS0(SYS_epoll_ctl, ep, 7, r, (long)&e));
    show("epoll_ctl(MOD, not added)", SYS0(SYS_epoll_ctl, ep, EPOLL_CTL_MOD, r, (long)&e));
    show("epoll_ctl(DEL, not added, bad event)", SYS0(SYS_epoll_ctl, ep, EPOLL_CTL_DEL, r, 1L << 60));
    struct epoll_event excl = { EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT, { 0 } };
    show("epoll_ctl(ADD, EXCLUSIVE with ONESHOT)", SYS0(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, r, (long)&excl));
    show("epoll_ctl(ADD r, level)", SYS0(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, r, (long)&e));
    show("epoll_ctl(ADD r again)", SYS0(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, r, (long)&e));
    show("epoll_wait(maxevents 0)", SYS0(SYS_epoll_wait, ep, (long)buf, 0, 0));
    show("epoll_wait(bad events)", SYS0(SYS_epoll_wait, ep, 1L << 60, 1, 0));
    show("epoll_wait(epfd a pipe)", SYS0(SYS_epoll_wait, r, (long)buf, 1, 0));
    show("epoll_wait(bad epfd)", SYS0(SYS_epoll_wait, 99, (long)buf, 1, 0));
    show("epoll_pwait(sigsetsize 16)", sys(SYS_epoll_pwait, ep, (long)buf, 1, 0, (long)buf, 16));
    waitshow("wait: the pipe has data (level)", ep);
    waitshow("wait: still has data (level)", ep);
    while (SYS0(SYS_read, r, (long)big, sizeof big) > 0) {}
    waitshow("wait: drained", ep);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long n = SYS0(SYS_epoll_wait, ep, (long)buf, 1, 20);
    printf("epoll_wait(20 ms) on nothing = %ld, waited >= 20 ms: %s\n", n, ms_since(&t0) >= 19 ? "yes" : "no");
    e.events = EPOLLIN | EPOLLET;
    show("epoll_ctl(MOD r, edge-triggered)", SYS0(SYS_epoll_ctl, ep, EPOLL_CTL_MOD, r, (long)&e));
    SYS0(SYS_write, w, (long)"a", 1);
    waitshow("wait: new data (edge)", ep);
    waitshow("wait: no new data (edge)", ep);
    SYS0(SYS_write, w, (long)"b", 1);
    waitshow("wait: more data (edge)", ep);
    e.events = EPOLLIN | EPOLLONESHOT;
    e.data.u64 = 9;
    show("epoll_ctl(MOD r, one-shot)", SYS0(SYS_epoll_ctl, ep, EPOLL_CTL_MOD, r, (long)&e));
    waitshow("wait: one-shot", ep);
    waitshow("wait: one-shot spent", ep);
    show("epoll_ctl(MOD r, one-shot again)", SYS0(SYS_epoll_ctl, ep, EPOLL_CTL_MOD, r, (long)&e));
    waitshow("wait: one-shot re-armed", ep);
    show("epoll_ctl(DEL r)", SYS0(SYS_epoll_ctl, ep, EPOLL_CTL_DEL, r, 0));
    struct epoll_event out = { EPOLLOUT, { .u64 = 11 } };
    show("epoll_ctl(ADD w, EPOLLOUT)", SYS0(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, w, (long)&out));
    waitshow("wait: room to write", ep);
    while (SYS0(SYS_write, w, (long)big, sizeof big) > 0) {}
    waitshow("wait: pipe full", ep);
    struct epoll_event in = { EPOLLIN, { .u64 = 12 } };
    show("epoll_ctl(ADD stdin)", SYS0(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, 0, (long)&in));
    show("epoll_ctl(ADD r back)", SYS0(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, r, (long)&in));
    show("close(w)", SYS0(SYS_close, w));
    waitshow("wait: stdin at its end, r has data and no writer", ep);
    while (SYS0(SYS_read, r, (long)big, sizeof big) > 0) {}
    show("read(r) at end", SYS0(SYS_read, r, (long)buf, 1));
    show("close(r)", SYS0(SYS_close, r));
    show("close(r) again", SYS0(SYS_close, r));
    show("epoll_ctl(DEL stdin)", SYS0(SYS_epoll_ctl, ep, EPOLL_CTL_DEL, 0, 0));
    waitshow("wait: nothing left", ep);
    SYS0(SYS_pipe2, (long)fds, 0);
    show("close(read end); write(w)", (SYS0(SYS_close, fds[0]), SYS0(SYS_write, fds[1], (long)"x", 1)));
    SYS0(SYS_close, fds[1]);

    /* eventfd */
    show("eventfd2(bad flags)", SYS0(SYS_eventfd2, 0, 0x10));
    int ev = (int)SYS0(SYS_eventfd2, 3, EFD_NONBLOCK);
    uint64_t v = 0;
    show("read(eventfd, 4 bytes)", SYS0(SYS_read, ev, (long)&v, 4));
    show("read(eventfd)", SYS0(SYS_read, ev, (long)&v, 8));
    printf("value %llu\n", (unsigned long long)v);
    show("read(eventfd) at 0", SYS0(SYS_read, ev, (long)&v, 8));
    v = UINT64_MAX;
    show("write(eventfd, UINT64_MAX)", SYS0(SYS_write, ev, (long)&v, 8));
    v = UINT64_MAX - 1;
    show("write(eventfd, UINT64_MAX - 1)", SYS0(SYS_write, ev, (long)&v, 8));
    v = 1;
    show("write(eventfd, 1) over the limit", SYS0(SYS_write, ev, (long)&v, 8));
    show("read(eventfd) all", SYS0(SYS_read, ev, (long)&v, 8));
    int sem = (int)SYS0(SYS_eventfd2, 2, EFD_SEMAPHORE | EFD_NONBLOCK);
    show("read(semaphore)", SYS0(SYS_read, sem, (long)&v, 8));
    printf("value %llu\n", (unsigned long long)v);
    show("read(semaphore)", SYS0(SYS_read, sem, (long)&v, 8));
    show("read(semaphore) at 0", SYS0(SYS_read, sem, (long)&v, 8));

    /* A thread posts to a blocking eventfd 20 ms from now; epoll_wait with no timeout sees it. */
    counter = (int)SYS0(SYS_eventfd2, 0, 0);
    struct epoll_event ce = { EPOLLIN, { .u64 = 42 } };
    SYS0(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, counter, (long)&ce);
    pthread_t t;
    pthread_create(&t, NULL, poster, NULL);
    struct epoll_event got = { 0, { 0 } };
    while ((n = SYS0(SYS_epoll_wait, ep, (long)&got, 1, -1)) == 0) {}
    printf("thread's post woke epoll_wait: %ld {%#x, %llu}\n", n, got.events, (unsigned long long)got.data.u64);
    show("read(blocking eventfd)", SYS0(SYS_read, counter, (long)&v, 8));
    pthread_join(t, NULL);
    printf("still running\n");
    return 0;
}
