// System calls for the trace to decode, issued raw (no libc wrapper rewrites them): a denied
// open, a call tinyedge does not implement, bad pointers, a string to escape, a long one to cut,
// mmap flags, a number x86-64 does not use. Prints each result; exits with status 3.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
  static char long_path[200];
  memset(long_path, 'a', sizeof long_path - 1);
  long_path[0] = '/';
  printf("openat denied: %ld\n", syscall(SYS_openat, AT_FDCWD, "/etc/passwd", O_RDONLY | O_CLOEXEC));
  printf("socket: %ld\n", syscall(SYS_socket, 2, 1, 0));
  printf("write bad pointer: %ld\n", syscall(SYS_write, 1, (void *)0xdead0000, 10));
  printf("write huge: %ld\n", syscall(SYS_write, 1, (void *)-1L, (size_t)-1));
  printf("openat bad path: %ld\n", syscall(SYS_openat, AT_FDCWD, (const char *)0x10, O_RDONLY));
  printf("open long path: %ld\n", syscall(SYS_open, long_path, O_WRONLY | O_CREAT | O_TRUNC, 0644));
  void *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  printf("mmap: %s\n", m == MAP_FAILED ? "failed" : "ok");
  fflush(stdout);
  printf("write escapes: %ld\n", syscall(SYS_write, 2, "tab\there \"quoted\"\n", 18));
  printf("unused number: %ld\n", syscall(1000, 1, 2));
  fflush(stdout);
  return 3;
}
