// Floods stdout (or, with the argument "stderr", stderr) forever in 64 KiB writes, for a reader
// that never reads: says so on the other stream first, then retries every write that fails or
// falls short, so only the time limit can end it.
#include <errno.h>
#include <string.h>
#include <unistd.h>

static char buf[65536];

int main(int argc, char **argv) {
  int to_stderr = argc > 1 && strcmp(argv[1], "stderr") == 0;
  int fd = to_stderr ? 2 : 1, other = to_stderr ? 1 : 2;
  const char *hello = to_stderr ? "flooding stderr\n" : "flooding stdout\n";
  memset(buf, 'x', sizeof buf);
  write(other, hello, strlen(hello));
  for (;;) {
    ssize_t n = write(fd, buf, sizeof buf);
    if (n < 0 && errno != EINTR) {
      const char *failed = "stdout_flood: write failed\n";
      write(other, failed, strlen(failed));
      return 1;
    }
  }
}
