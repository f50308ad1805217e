// Buffered stdio is flushed at exit: 2000 printf lines (more than one buffer), a last line
// without a newline, then an atexit handler's output; nothing calls fflush.
#include <stdio.h>
#include <stdlib.h>

static void at_exit_handler(void) { printf("\natexit handler ran"); }

int main(void) {
  if (atexit(at_exit_handler) != 0) {
    fprintf(stderr, "stdio_flush: atexit failed\n");
    return 1;
  }
  for (int i = 0; i < 2000; i++) printf("line %04d of buffered output\n", i);
  printf("last line, no newline");
  return 0;
}
