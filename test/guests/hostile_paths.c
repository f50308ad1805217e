// Probes the host's file policy with every path-taking system call, issued raw (no libc wrapper
// rewrites them), and prints one line per argument with the result of each call:
//   PATH           "open=R openat=R creat=R stat=R lstat=R fstatat=R nofollow=R access=R
//                   readlink=R readlinkat=R", relative paths against AT_FDCWD
//   at:FILE:REL    "openat=R fstatat=R readlinkat=R" with REL against a dirfd opened on FILE
//   long:N         as PATH, for "/" followed by N bytes of 'a' (a path longer than PATH_MAX)
// R is OK or the errno's name. A host that leaks what exists outside its allowed directories
// prints different lines for paths that differ only in what exists there.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static char statbuf[256], linkbuf[256];

static const char *result(long r) {
  static char other[32];
  if (r >= 0) return "OK";
  switch (errno) {
  case ENOENT: return "ENOENT";
  case EACCES: return "EACCES";
  case ENOTDIR: return "ENOTDIR";
  case EISDIR: return "EISDIR";
  case ELOOP: return "ELOOP";
  case ENAMETOOLONG: return "ENAMETOOLONG";
  case EINVAL: return "EINVAL";
  case EROFS: return "EROFS";
  case EBADF: return "EBADF";
  case EFAULT: return "EFAULT";
  case ENOSYS: return "ENOSYS";
  default:
    snprintf(other, sizeof other, "E%d", errno);
    return other;
  }
}

/** An open's result; a file it opened is closed again. */
static const char *opened(long fd) {
  const char *r = result(fd);
  if (fd >= 0) close((int)fd);
  return r;
}

static void probe(const char *path) {
  printf("open=%s", opened(syscall(SYS_open, path, O_RDONLY)));
  printf(" openat=%s", opened(syscall(SYS_openat, AT_FDCWD, path, O_RDONLY)));
  printf(" creat=%s", opened(syscall(SYS_open, path, O_WRONLY | O_CREAT, 0644)));
  printf(" stat=%s", result(syscall(SYS_stat, path, statbuf)));
  printf(" lstat=%s", result(syscall(SYS_lstat, path, statbuf)));
  printf(" fstatat=%s", result(syscall(SYS_newfstatat, AT_FDCWD, path, statbuf, 0)));
  printf(" nofollow=%s", result(syscall(SYS_newfstatat, AT_FDCWD, path, statbuf, AT_SYMLINK_NOFOLLOW)));
  printf(" access=%s", result(syscall(SYS_access, path, R_OK)));
  printf(" readlink=%s", result(syscall(SYS_readlink, path, linkbuf, sizeof linkbuf)));
  printf(" readlinkat=%s\n", result(syscall(SYS_readlinkat, AT_FDCWD, path, linkbuf, sizeof linkbuf)));
}

static int probe_at(char *spec) {
  char *rel = strchr(spec, ':');
  if (rel == NULL) return 0;
  *rel++ = '\0';
  long dirfd = syscall(SYS_open, spec, O_RDONLY);
  if (dirfd < 0) {
    fprintf(stderr, "hostile_paths: cannot open %s as a dirfd: %s\n", spec, result(dirfd));
    return 0;
  }
  printf("openat=%s", opened(syscall(SYS_openat, dirfd, rel, O_RDONLY)));
  printf(" fstatat=%s", result(syscall(SYS_newfstatat, dirfd, rel, statbuf, 0)));
  printf(" readlinkat=%s\n", result(syscall(SYS_readlinkat, dirfd, rel, linkbuf, sizeof linkbuf)));
  close((int)dirfd);
  return 1;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "at:", 3) == 0) {
      if (!probe_at(argv[i] + 3)) return 1;
    } else if (strncmp(argv[i], "long:", 5) == 0) {
      size_t n = strtoul(argv[i] + 5, NULL, 10);
      char *path = malloc(n + 2);
      path[0] = '/';
      memset(path + 1, 'a', n);
      path[n + 1] = '\0';
      probe(path);
      free(path);
    } else {
      probe(argv[i]);
    }
  }
  return 0;
}
