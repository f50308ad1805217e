// Reads /proc/self/maps with raw system calls (no allocation between the open and the exit, so
// the mappings the host has at the end are the ones the file showed), writes it to stdout, then
// checks the main thread's stack as glibc's pthread_getattr_np finds it through that file, and
// the file's answers to writing, to O_DIRECTORY and to a read in pieces.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static char text[1 << 17];

int main(void) {
  pthread_attr_t attr;
  void *addr;
  size_t size;
  int r = pthread_getattr_np(pthread_self(), &attr);
  if (r == 0) pthread_attr_getstack(&attr, &addr, &size);
  int wr = (int)syscall(SYS_open, "/proc/self/maps", O_WRONLY);
  int wr_errno = errno;
  int dir = (int)syscall(SYS_open, "/proc/self/maps", O_RDONLY | O_DIRECTORY);
  int dir_errno = errno;
  int other = (int)syscall(SYS_open, "/proc/self/status", O_RDONLY);
  int other_errno = errno;
  int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
  long n = 0, got;
  // Small reads, as stdio's line reader makes them: the file must come back whole and in order.
  while ((got = syscall(SYS_read, fd, text + n, 100)) > 0) n += got;
  syscall(SYS_write, 1, text, n);
  char line[200];
  int len = snprintf(line, sizeof line, "--\npthread_getattr_np %d stack %p size %#zx\nwrite %d %d, O_DIRECTORY %d %d, /proc/self/status %d %d\n",
                     r, addr, size, wr, wr_errno, dir, dir_errno, other, other_errno);
  syscall(SYS_write, 1, line, len);
  syscall(SYS_exit_group, 0);
}
