// Faults three calls deep (main → outer → inner, none inlined): built with frame pointers, the
// trace's backtrace walks the RBP chain back through all three. A write through NULL in inner().
#include <stdio.h>

static int *volatile target = NULL;

__attribute__((noinline)) static void inner(int value) {
  *target = value;
}

__attribute__((noinline)) static void outer(int value) {
  inner(value + 1);
  __asm__ volatile("" ::: "memory"); /* keeps the call a call, not a tail jump */
}

int main(void) {
  printf("faulting in inner\n");
  fflush(stdout);
  outer(41);
  return 0;
}
