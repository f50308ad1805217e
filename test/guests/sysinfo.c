// Identity system calls return sane values: uname says Linux on x86_64 with a version-like
// release, getpid is positive and stable, the page size (auxv AT_PAGESZ and sysconf) is 4096.
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/utsname.h>
#include <unistd.h>

static int failures;

static void check(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "sysinfo: FAILED: %s\n", what);
    failures++;
  }
}

int main(void) {
  struct utsname u;
  memset(&u, 0xff, sizeof u);
  check(uname(&u) == 0, "uname() returns 0");
  check(memchr(u.sysname, '\0', sizeof u.sysname) != NULL, "uname sysname is NUL-terminated");
  check(memchr(u.release, '\0', sizeof u.release) != NULL, "uname release is NUL-terminated");
  check(memchr(u.machine, '\0', sizeof u.machine) != NULL, "uname machine is NUL-terminated");
  check(strcmp(u.sysname, "Linux") == 0, "uname sysname is Linux");
  check(strcmp(u.machine, "x86_64") == 0, "uname machine is x86_64");
  check(isdigit((unsigned char)u.release[0]) && strchr(u.release, '.') != NULL, "uname release looks like a version (digit, dot)");
  if (failures == 0) printf("uname: %s %s, release looks like a version\n", u.sysname, u.machine);

  pid_t pid = getpid();
  check(pid > 0, "getpid() is positive");
  check(getpid() == pid, "getpid() is stable");
  if (failures == 0) printf("getpid: positive and stable\n");

  check(getauxval(AT_PAGESZ) == 4096, "auxv AT_PAGESZ is 4096");
  check(sysconf(_SC_PAGESIZE) == 4096, "sysconf(_SC_PAGESIZE) is 4096");
  if (failures == 0) printf("page size: 4096\n");
  return failures == 0 ? 0 : 1;
}
