// Never finishes, for the timeout: `spin loop` burns the CPU, `spin sleep` sleeps for 100 s in
// nanosleep, `spin stdin` blocks reading stdin (the test keeps it open). Each first says what it
// is about to do, flushed, so the output written before the timeout is seen to arrive.
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  const char *how = argc > 1 ? argv[1] : "loop";
  if (strcmp(how, "loop") == 0) {
    printf("spinning forever\n");
    fflush(stdout);
    for (volatile unsigned long n = 0;; n++) {
    }
  }
  if (strcmp(how, "sleep") == 0) {
    printf("sleeping for 100 s\n");
    fflush(stdout);
    struct timespec t = {100, 0};
    nanosleep(&t, NULL);
    fprintf(stderr, "spin: woke up from a 100 s sleep\n");
    return 1;
  }
  if (strcmp(how, "stdin") == 0) {
    printf("waiting for stdin\n");
    fflush(stdout);
    char c;
    ssize_t n = read(0, &c, 1);
    fprintf(stderr, "spin: read from stdin returned %zd\n", n);
    return 1;
  }
  fprintf(stderr, "usage: spin loop|sleep|stdin\n");
  return 2;
}
