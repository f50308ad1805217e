// A 96 MiB zero-initialised array (.bss), every page touched: does not fit in the default 64 MiB
// of guest memory, fits with --memory 160MiB.
#include <stdio.h>

#define SIZE (96u << 20)

static char big[SIZE];

int main(void) {
  unsigned long sum = 0;
  for (unsigned i = 0; i < SIZE; i += 4096) {
    sum += (unsigned char)big[i];
    big[i] = 1;
  }
  for (unsigned i = 0; i < SIZE; i += 4096) sum += (unsigned char)big[i];
  if (sum != SIZE / 4096) {
    fprintf(stderr, "big_bss: .bss was not zero-filled or did not keep the writes\n");
    return 1;
  }
  printf("touched all %u pages of a 96 MiB .bss\n", SIZE / 4096);
  return 0;
}
