/* System-call arguments as a hostile program passes them: negative fds, ints with garbage in the
 * upper 32 bits, negative and huge offsets, lengths and counts, non-canonical addresses. Every
 * call is raw (syscall()) with explicit 64-bit values and prints "call = result" (the result or
 * -errno), so the output can be compared with what Linux answers: run natively from / (as
 * `hostile_args /abs/path/file rel/path/file`), it prints the same lines.
 * The file holds "0123456789\n". `hostile_args` takes its absolute and its relative path
 * (relative to the working directory, / in the guest). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define HI ((long)0xffffffff00000000UL) /* garbage in the upper half of an int argument */
#define AT_FDCWD_32 0xffffff9cL          /* AT_FDCWD (-100) without its sign extension */
#define ARCH_SET_FS 0x1002
#define ARCH_GET_FS 0x1003

static long show(const char *call, long r) {
    long v = r == -1 ? -errno : r;
    printf("%s = %ld\n", call, v);
    return v;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: hostile_args <absolute path> <relative path>\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IONBF, 0); /* every line out before a crash, if there is one */
    const char *rel = argv[2];
    char buf[16] = {0};
    struct stat_buf { char bytes[144]; } st;

    /* Negative fds are not fd 0. */
    show("close(-1)", syscall(SYS_close, -1L));
    show("fstat(-1)", syscall(SYS_fstat, -1L, &st));
    show("read(-1, NULL, 8)", syscall(SYS_read, -1L, 0L, 8L));
    show("write(-1, NULL, 8)", syscall(SYS_write, -1L, 0L, 8L));
    show("lseek(-1, 0, SEEK_SET)", syscall(SYS_lseek, -1L, 0L, 0L));
    show("ioctl(-1, 0)", syscall(SYS_ioctl, -1L, 0L, 0L));
    show("fcntl(-1, F_GETFD)", syscall(SYS_fcntl, -1L, 1L, 0L));

    /* AT_FDCWD and a relative path: resolved from the working directory. */
    long fd = show("openat(AT_FDCWD, relative)", syscall(SYS_openat, -100L, rel, 0L, 0L));
    show("read(fd, 5)", syscall(SYS_read, fd, buf, 5L));
    show("lseek(fd, -1, SEEK_CUR)", syscall(SYS_lseek, fd, -1L, 1L));
    show("read(fd, 1)", syscall(SYS_read, fd, buf, 1L));
    printf("byte read = %c\n", buf[0]);
    show("lseek(fd, -5, SEEK_END)", syscall(SYS_lseek, fd, -5L, 2L));
    show("lseek(fd, -12, SEEK_END)", syscall(SYS_lseek, fd, -12L, 2L));
    show("lseek(fd, -1, SEEK_SET)", syscall(SYS_lseek, fd, -1L, 0L));
    show("lseek(fd, 0, 5)", syscall(SYS_lseek, fd, 0L, 5L));
    show("lseek(fd, 0, 1<<32 | SEEK_END)", syscall(SYS_lseek, fd, 0L, (1L << 32) | 2));
    show("lseek(HI | fd, 2, SEEK_SET)", syscall(SYS_lseek, HI | fd, 2L, 0L));
    show("pread64(fd, 8, -1)", syscall(SYS_pread64, fd, buf, 8L, -1L));
    show("pread64(fd, 8, 1<<60)", syscall(SYS_pread64, fd, buf, 8L, 1L << 60));
    show("pread64(fd, 8, (1<<63) - 4)", syscall(SYS_pread64, fd, buf, 8L, (long)((1UL << 63) - 4)));
    show("pread64(fd, 2, 3)", syscall(SYS_pread64, fd, buf, 2L, 3L));
    printf("bytes read = %.2s\n", buf);
    show("fstat(HI | fd)", syscall(SYS_fstat, HI | fd, &st));

    /* readv/writev counts are unsigned int to the kernel; an iovec length with its top bit set is EINVAL. */
    struct iovec iov = { buf, 3 };
    show("readv(fd, 1<<32 | 1)", syscall(SYS_readv, fd, &iov, (1L << 32) | 1));
    show("readv(fd, 1025)", syscall(SYS_readv, fd, &iov, 1025L));
    struct iovec neg = { buf, (size_t)-1 };
    show("readv(fd, {buf, -1})", syscall(SYS_readv, fd, &neg, 1L));
    struct iovec far = { (void *)(1L << 60), 3 };
    show("readv(fd, {1<<60, 3})", syscall(SYS_readv, fd, &far, 1L));

    /* An int argument is the low 32 bits of its register. */
    long fd2 = show("openat(0xffffff9c, relative)", syscall(SYS_openat, AT_FDCWD_32, rel, HI, 0L));
    show("close(HI | fd2)", syscall(SYS_close, HI | fd2));
    show("close(fd2)", syscall(SYS_close, fd2));
    printf("getpid with HI in rax: %s\n", syscall(HI | SYS_getpid) == getpid() ? "same" : "different");
    struct timespec ts;
    show("clock_gettime(1<<32 | CLOCK_MONOTONIC)", syscall(SYS_clock_gettime, (1L << 32) | CLOCK_MONOTONIC, &ts));

    /* Offsets and lengths at the ends of the 64-bit range. */
    long at = syscall(SYS_mmap, 0L, 4096L, 1L, 2L, fd, 1L << 60);
    printf("mmap(fd, offset 1<<60) = %s\n", at > 0 && at < (1L << 47) && at % 4096 == 0 ? "mapped" : "failed");
    if (at > 0) syscall(SYS_munmap, at, 4096L);
    show("mmap(fd, offset 1<<63)", syscall(SYS_mmap, 0L, 4096L, 1L, 2L, fd, (long)(1UL << 63)));
    show("mmap(fd, offset -4096)", syscall(SYS_mmap, 0L, 4096L, 1L, 2L, fd, -4096L));
    show("mmap(fd, offset 1<<60 | 1)", syscall(SYS_mmap, 0L, 4096L, 1L, 2L, fd, (1L << 60) | 1));
    show("mmap(anonymous, length -1)", syscall(SYS_mmap, 0L, -1L, 3L, 0x22L, -1L, 0L));
    show("mmap(length 0, fd -1)", syscall(SYS_mmap, 0L, 0L, 3L, 2L, -1L, 0L));
    show("mmap(MAP_FIXED at 1<<60)", syscall(SYS_mmap, 1L << 60, 4096L, 3L, 0x32L, -1L, 0L));
    show("munmap(1<<60, 4096)", syscall(SYS_munmap, 1L << 60, 4096L));
    show("munmap(0x10000, -4096)", syscall(SYS_munmap, 0x10000L, -4096L));
    show("mprotect(1<<60, 4096)", syscall(SYS_mprotect, 1L << 60, 4096L, 1L));
    show("madvise(0x10001, 10)", syscall(SYS_madvise, 0x10001L, 10L, 0L));
    show("close(fd)", syscall(SYS_close, fd));

    /* Non-canonical and kernel-half FS bases. */
    show("arch_prctl(ARCH_SET_FS, 0x800000000000)", syscall(SYS_arch_prctl, ARCH_SET_FS, 0x800000000000L));
    show("arch_prctl(ARCH_SET_FS, 0x7ffffffff000)", syscall(SYS_arch_prctl, ARCH_SET_FS, 0x7ffffffff000L));
    show("arch_prctl(ARCH_SET_FS, -1)", syscall(SYS_arch_prctl, ARCH_SET_FS, -1L));
    unsigned long fs = 0;
    show("arch_prctl(ARCH_GET_FS)", syscall(SYS_arch_prctl, ARCH_GET_FS, &fs));
    show("arch_prctl(ARCH_SET_FS, current)", syscall(SYS_arch_prctl, ARCH_SET_FS, fs));

    /* Other ints and sizes the kernel validates. */
    show("tkill(0, 0)", syscall(SYS_tkill, 0L, 0L));
    show("tgkill(-1, 1, 0)", syscall(SYS_tgkill, -1L, 1L, 0L));
    show("kill(getpid(), 99)", syscall(SYS_kill, (long)getpid(), 99L));
    show("futex(0x10001, FUTEX_WAKE)", syscall(SYS_futex, 0x10001L, 1L, 1L, 0L));
    show("rt_sigaction(SIGUSR1, sigsetsize 16)", syscall(SYS_rt_sigaction, 10L, 0L, 0L, 16L));
    show("rt_sigprocmask(7, set, sigsetsize 8)", syscall(SYS_rt_sigprocmask, 7L, buf, 0L, 8L));
    show("sched_getaffinity(0, 1<<29)", syscall(SYS_sched_getaffinity, 0L, 1L << 29, buf));
    show("sched_getaffinity(0, 12)", syscall(SYS_sched_getaffinity, 0L, 12L, buf));
    show("set_robust_list(0, 10)", syscall(SYS_set_robust_list, 0L, 10L));
    show("prlimit64(0, 99, NULL, NULL)", syscall(SYS_prlimit64, 0L, 99L, 0L, 0L));
    show("getrlimit(HI | 99)", syscall(SYS_getrlimit, HI | 99, buf));
    show("getrandom(flags 8)", syscall(SYS_getrandom, buf, 4L, 8L));
    show("readlink(bufsiz 0)", syscall(SYS_readlink, "/x", buf, 0L));
    show("clock_gettime(CLOCK_REALTIME, NULL)", syscall(SYS_clock_gettime, 0L, 0L));
    show("clock_gettime(10, NULL)", syscall(SYS_clock_gettime, 10L, 0L));
    struct timespec negative = { -1, 0 }, bad_nsec = { 0, -1 };
    show("nanosleep({-1, 0})", syscall(SYS_nanosleep, &negative, 0L));
    show("nanosleep({0, -1})", syscall(SYS_nanosleep, &bad_nsec, 0L));
    show("clock_nanosleep(CLOCK_MONOTONIC_RAW)", syscall(SYS_clock_nanosleep, 4L, 0L, &ts, 0L));
    printf("still running\n");
    return 0;
}
