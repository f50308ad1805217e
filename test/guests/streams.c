// stdout and stderr are separate streams: each line must arrive on its own descriptor.
#include <stdio.h>

int main(void) {
  printf("this line goes to stdout\n");
  fprintf(stderr, "this line goes to stderr\n");
  printf("stdout again\n");
  fputs("stderr again\n", stderr);
  return 0;
}
