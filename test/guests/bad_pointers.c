// Bogus pointers handed to system calls fail with EFAULT and the program carries on. Needs some
// bytes on stdin ("still readable\n" in the test): the read into a bogus buffer must fail without
// consuming them, so a second read gets them. System calls are made raw (syscall()) so that no
// libc wrapper or vDSO touches the pointer in the guest first.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define BOGUS ((void *)0xdead0000)
#define KERNEL_HALF ((void *)0xffff800000000000)
#define NON_CANONICAL ((void *)0x0000800000000000)  // first address above the user half
#define TOP_PAGE ((void *)0xfffffffffffff000)
#define WRAPS ((void *)0xfffffffffffffff0)           // + 32 bytes wraps around to 0x10

static char buffer[64] = "0123456789";
static int failures, checks;

static void expect_efault(long ret, const char *call) {
  int err = errno;
  checks++;
  if (ret == -1 && err == EFAULT) {
    printf("%s: EFAULT\n", call);
  } else {
    printf("%s: returned %ld, errno %d (%s), expected -1 with EFAULT\n", call, ret, ret == -1 ? err : 0,
           ret == -1 ? strerror(err) : "-");
    failures++;
  }
}

int main(void) {
  expect_efault(syscall(SYS_write, 1, BOGUS, 10), "write(1, 0xdead0000, 10)");
  expect_efault(syscall(SYS_write, 1, NULL, 10), "write(1, NULL, 10)");
  expect_efault(syscall(SYS_write, 1, KERNEL_HALF, 10), "write(1, 0xffff800000000000, 10)");
  expect_efault(syscall(SYS_write, 1, NON_CANONICAL, 10), "write(1, 0x800000000000, 10)");
  expect_efault(syscall(SYS_write, 1, TOP_PAGE, 10), "write(1, 0xfffffffffffff000, 10)");
  expect_efault(syscall(SYS_write, 1, WRAPS, 32), "write(1, 0xfffffffffffffff0, 32)");
  expect_efault(syscall(SYS_write, 1, buffer, (size_t)1 << 47), "write(1, buffer, 1 << 47)");
  expect_efault(syscall(SYS_write, 1, buffer, SIZE_MAX), "write(1, buffer, SIZE_MAX)");
  expect_efault(syscall(SYS_read, 0, BOGUS, 10), "read(0, 0xdead0000, 10)");
  expect_efault(syscall(SYS_read, 0, KERNEL_HALF, 10), "read(0, 0xffff800000000000, 10)");

  struct iovec bad_base = {BOGUS, 10};
  expect_efault(syscall(SYS_writev, 1, BOGUS, 1), "writev(1, 0xdead0000, 1)");
  expect_efault(syscall(SYS_writev, 1, &bad_base, 1), "writev(1, {0xdead0000, 10}, 1)");

  expect_efault(syscall(SYS_clock_gettime, CLOCK_REALTIME, (void *)1), "clock_gettime(CLOCK_REALTIME, 0x1)");
  expect_efault(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, KERNEL_HALF), "clock_gettime(CLOCK_MONOTONIC, 0xffff800000000000)");
  expect_efault(syscall(SYS_gettimeofday, BOGUS, NULL), "gettimeofday(0xdead0000, NULL)");
  expect_efault(syscall(SYS_nanosleep, BOGUS, NULL), "nanosleep(0xdead0000, NULL)");
  expect_efault(syscall(SYS_uname, BOGUS), "uname(0xdead0000)");
  expect_efault(syscall(SYS_getrandom, BOGUS, 16, 0), "getrandom(0xdead0000, 16, 0)");
  expect_efault(syscall(SYS_openat, AT_FDCWD, BOGUS, O_RDONLY), "openat(AT_FDCWD, 0xdead0000, O_RDONLY)");
  expect_efault(syscall(SYS_fstat, 1, BOGUS), "fstat(1, 0xdead0000)");
  expect_efault(syscall(SYS_newfstatat, 1, "", BOGUS, AT_EMPTY_PATH), "newfstatat(1, \"\", 0xdead0000, AT_EMPTY_PATH)");

  ssize_t n = read(0, buffer, sizeof buffer - 1);
  if (n <= 0) {
    printf("read(0, buffer, 63) after the failed reads: returned %zd, expected the bytes on stdin\n", n);
    failures++;
  } else {
    buffer[n] = '\0';
    printf("stdin after the failed reads: %s", buffer);
  }
  printf("%d of %d bogus pointers rejected with EFAULT\n", checks - failures, checks);
  return failures == 0 ? 0 : 1;
}
