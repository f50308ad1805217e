// stdin is the command's stdin: copies it to stdout with read/write (odd-sized reads, partial
// writes retried) until end of file, then reports the byte count on stderr.
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char buf[70000];

int main(void) {
  unsigned long long total = 0;
  size_t chunk = 1;
  for (;;) {
    ssize_t n = read(0, buf, chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      fprintf(stderr, "stdin_echo: read failed: %s\n", strerror(errno));
      return 1;
    }
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = write(1, buf + done, (size_t)(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        fprintf(stderr, "stdin_echo: write failed: %s\n", strerror(errno));
        return 1;
      }
      done += w;
    }
    total += (unsigned long long)n;
    chunk = chunk * 7 % sizeof buf + 1; // 1, 8, 57, 400, ... varied read sizes
  }
  fprintf(stderr, "stdin_echo: %llu bytes\n", total);
  return 0;
}
