// 8 MiB of output arrives intact: 131072 lines of 64 bytes, line i being "%07d " then 55
// characters of "a-zA-Z0-9" taken cyclically from index i % 62 then '\n', written with write and
// writev in chunks of 1 byte to 256 KiB, partial writes retried.
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define LINES 131072
#define LINE 64
#define TOTAL ((size_t)LINES * LINE)

static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

int main(void) {
  char *out = malloc(TOTAL + 1);
  if (out == NULL) {
    fprintf(stderr, "big_output: malloc of 8 MiB failed\n");
    return 1;
  }
  for (size_t i = 0; i < LINES; i++) {
    char *line = out + i * LINE;
    snprintf(line, 9, "%07zu ", i);
    for (size_t j = 0; j < 55; j++) line[8 + j] = alphabet[(i + j) % 62];
    line[63] = '\n';
  }
  uint32_t rng = 2463534242u;
  size_t done = 0;
  unsigned calls = 0;
  while (done < TOTAL) {
    rng ^= rng << 13, rng ^= rng >> 17, rng ^= rng << 5;
    size_t chunk = 1 + rng % (256u << 10);
    if (chunk > TOTAL - done) chunk = TOTAL - done;
    ssize_t w;
    if (calls++ % 2 == 0) {
      w = write(1, out + done, chunk);
    } else {
      struct iovec iov[2] = {{out + done, chunk / 2}, {out + done + chunk / 2, chunk - chunk / 2}};
      w = writev(1, iov, 2);
    }
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      fprintf(stderr, "big_output: write failed after %zu bytes: %s\n", done, strerror(errno));
      return 1;
    }
    done += (size_t)w;
  }
  fprintf(stderr, "big_output: wrote %zu bytes\n", done);
  return 0;
}
