// CPU exceptions other than a NULL read, one per run:
//   `cpu_exception ud2`     executes an undefined instruction (#UD, natively SIGILL)
//   `cpu_exception divide`  divides by zero (#DE, natively SIGFPE)
//   `cpu_exception rodata`  writes into a string literal, which is read-only (page fault on a
//                           present page, natively SIGSEGV); the target address is printed first
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char literal[] = "read-only data";

int main(int argc, char **argv) {
  const char *what = argc > 1 ? argv[1] : "";
  if (strcmp(what, "ud2") == 0) {
    printf("executing ud2\n");
    fflush(stdout);
    __asm__ volatile("ud2");
  } else if (strcmp(what, "divide") == 0) {
    volatile int zero = 0, one = 1;
    printf("dividing by zero\n");
    fflush(stdout);
    printf("1 / 0 = %d\n", one / zero);
  } else if (strcmp(what, "rodata") == 0) {
    char *volatile target = (char *)literal;
    printf("writing to read-only data at %#lx\n", (unsigned long)(uintptr_t)target);
    fflush(stdout);
    target[0] = 'X';
    printf("the write to read-only data succeeded: %s\n", literal);
  } else {
    fprintf(stderr, "usage: cpu_exception ud2|divide|rodata\n");
    return 2;
  }
  return 1;
}
