// Infinite recursion, 1 KiB of stack per call, until the stack runs out: a page fault below the
// stack (natively: SIGSEGV). Calls go through a volatile function pointer so the compiler can
// neither turn the recursion into a loop nor prove it infinite.
#include <stdio.h>
#include <string.h>

static unsigned long recurse(unsigned long depth);
static unsigned long (*volatile next)(unsigned long) = recurse;

static unsigned long recurse(unsigned long depth) {
  volatile char frame[1024];
  memset((char *)frame, (int)depth, sizeof frame);
  return next(depth + 1) + frame[depth % sizeof frame];
}

int main(void) {
  printf("recursing forever\n");
  fflush(stdout);
  unsigned long r = next(0);
  printf("recursion returned %lu\n", r);
  return 1;
}
