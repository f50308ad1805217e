// File access policy, one check per argument, in order:
//   read:PATH     open read-only succeeds; fstat size, reads of 5 bytes, lseek back, read again
//                 agree; prints the size and the contents
//   deny:PATH     open read-only fails with EACCES or ENOENT
//   nowrite:PATH  open for writing (O_WRONLY|O_CREAT|O_TRUNC, O_RDWR, O_WRONLY|O_APPEND) fails
//                 with EACCES, EPERM, EROFS or ENOENT, so nothing can be modified or created
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char buf[65536], again[65536];

static int read_file(const char *path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) {
    fprintf(stderr, "files: open(%s, O_RDONLY) failed: %s\n", path, strerror(errno));
    return 0;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    fprintf(stderr, "files: fstat(%s) failed or not a regular file\n", path);
    return 0;
  }
  size_t n = 0;
  ssize_t r;
  while (n < sizeof buf && (r = read(fd, buf + n, 5)) > 0) n += (size_t)r; // small reads: the offset must advance
  if (r < 0 || (off_t)n != st.st_size) {
    fprintf(stderr, "files: read %zu bytes of %s, fstat says %lld\n", n, path, (long long)st.st_size);
    return 0;
  }
  if (lseek(fd, 0, SEEK_SET) != 0 || read(fd, again, sizeof again) != (ssize_t)n || memcmp(buf, again, n) != 0) {
    fprintf(stderr, "files: after lseek(0) %s read back differently\n", path);
    return 0;
  }
  if (close(fd) != 0) {
    fprintf(stderr, "files: close(%s) failed: %s\n", path, strerror(errno));
    return 0;
  }
  printf("read %s: %zu bytes:\n", path, n);
  fwrite(buf, 1, n, stdout);
  return 1;
}

static int refused(const char *path, int flags, const char *flag_names, int allow_write_errors) {
  int fd = open(path, flags, 0644);
  if (fd >= 0) {
    fprintf(stderr, "files: open(%s, %s) succeeded, expected a refusal\n", path, flag_names);
    close(fd);
    return 0;
  }
  if (errno == EACCES || errno == ENOENT || (allow_write_errors && (errno == EPERM || errno == EROFS))) return 1;
  fprintf(stderr, "files: open(%s, %s) failed with %s, expected EACCES or ENOENT\n", path, flag_names, strerror(errno));
  return 0;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strncmp(arg, "read:", 5) == 0) {
      if (!read_file(arg + 5)) return 1;
    } else if (strncmp(arg, "deny:", 5) == 0) {
      if (!refused(arg + 5, O_RDONLY, "O_RDONLY", 0)) return 1;
      printf("open %s: refused\n", arg + 5);
    } else if (strncmp(arg, "nowrite:", 8) == 0) {
      const char *path = arg + 8;
      if (!refused(path, O_WRONLY | O_CREAT | O_TRUNC, "O_WRONLY|O_CREAT|O_TRUNC", 1) ||
          !refused(path, O_RDWR, "O_RDWR", 1) || !refused(path, O_WRONLY | O_APPEND, "O_WRONLY|O_APPEND", 1))
        return 1;
      printf("open %s for writing: refused\n", path);
    } else {
      fprintf(stderr, "files: unknown check '%s'\n", arg);
      return 2;
    }
  }
  return 0;
}
