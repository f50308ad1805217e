// Reads through a NULL pointer: a page fault at address 0 (natively: SIGSEGV). The pointer is
// volatile so the compiler cannot see it is NULL and replace the load with a trap instruction.
#include <stdio.h>

int main(void) {
  int *volatile pointer = NULL;
  printf("reading through a NULL pointer\n");
  fflush(stdout);
  int value = *pointer;
  printf("read %d through NULL\n", value);
  return 1;
}
