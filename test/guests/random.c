// Randomness: two getrandom(32) calls (the second GRND_NONBLOCK) each fill the whole buffer, are
// not all zero and differ; the 16 auxv AT_RANDOM bytes are present and not all zero. The first
// sample goes to stderr so the test can check that two runs differ.
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/random.h>

static int all_zero(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != 0) return 0;
  return 1;
}

int main(void) {
  unsigned char a[32], b[32];
  memset(a, 0, sizeof a);
  memset(b, 0, sizeof b);
  if (getrandom(a, sizeof a, 0) != (ssize_t)sizeof a || getrandom(b, sizeof b, GRND_NONBLOCK) != (ssize_t)sizeof b) {
    fprintf(stderr, "random: getrandom did not return 32 bytes\n");
    return 1;
  }
  if (all_zero(a, sizeof a) || all_zero(b, sizeof b) || memcmp(a, b, sizeof a) == 0) {
    fprintf(stderr, "random: getrandom gave zeros or the same bytes twice\n");
    return 1;
  }
  printf("getrandom: 32 bytes twice, non-zero, different\n");

  const unsigned char *at_random = (const unsigned char *)getauxval(AT_RANDOM);
  if (at_random == NULL || all_zero(at_random, 16)) {
    fprintf(stderr, "random: auxv AT_RANDOM is missing or all zero\n");
    return 1;
  }
  printf("AT_RANDOM: 16 bytes, non-zero\n");

  fprintf(stderr, "sample ");
  for (size_t i = 0; i < sizeof a; i++) fprintf(stderr, "%02x", a[i]);
  fprintf(stderr, "\n");
  return 0;
}
