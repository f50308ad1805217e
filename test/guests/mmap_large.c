// A 32 MiB anonymous mmap: arrives zero-filled, every page can be written and read back, and
// after munmap a second 32 MiB mapping (which only fits if the first was given back under the
// default 64 MiB limit) is zero-filled again.
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>

#define SIZE (32u << 20)
#define PAGE 4096u

static int check_zero(const volatile uint64_t *words, const char *which) {
  for (size_t i = 0; i < SIZE / 8; i += PAGE / 8 / 4) // four words per page
    if (words[i] != 0) {
      fprintf(stderr, "mmap_large: %s mapping is not zero-filled at offset %zu\n", which, i * 8);
      return 0;
    }
  return 1;
}

static uint64_t *map(const char *which) {
  void *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror(which);
    return NULL;
  }
  return p;
}

int main(void) {
  uint64_t *words = map("mmap_large: first mmap of 32 MiB");
  if (words == NULL || !check_zero(words, "first")) return 1;
  printf("mmap 32 MiB: zero-filled\n");

  uint64_t sum = 0, expect = 0;
  for (size_t page = 0; page < SIZE / PAGE; page++)
    for (size_t w = 0; w < PAGE / 8; w += 61) {
      uint64_t v = (page << 20) ^ (w * 0x9e3779b97f4a7c15u);
      words[page * (PAGE / 8) + w] = v;
      expect += v;
    }
  for (size_t page = 0; page < SIZE / PAGE; page++)
    for (size_t w = 0; w < PAGE / 8; w += 61) sum += words[page * (PAGE / 8) + w];
  if (sum != expect) {
    fprintf(stderr, "mmap_large: read back checksum %016llx, wrote %016llx\n", (unsigned long long)sum,
            (unsigned long long)expect);
    return 1;
  }
  printf("wrote and read back all %u pages: checksum %016llx\n", SIZE / PAGE, (unsigned long long)sum);

  if (munmap(words, SIZE) != 0) {
    perror("mmap_large: munmap");
    return 1;
  }
  words = map("mmap_large: second mmap of 32 MiB");
  if (words == NULL || !check_zero(words, "second")) return 1;
  words[SIZE / 8 - 1] = 1;
  if (munmap(words, SIZE) != 0) {
    perror("mmap_large: second munmap");
    return 1;
  }
  printf("munmap, then mmap 32 MiB again: zero-filled\n");
  return 0;
}
