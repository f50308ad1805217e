// malloc/calloc/realloc/free stress: 100000 deterministic operations on 1024 slots, sizes from
// a few bytes to 1.1 MiB (large blocks go through mmap/mremap/munmap in both libcs), every block
// filled with a pattern that is verified before it is resized or freed.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 1024
#define OPERATIONS 100000

struct slot {
  unsigned char *p;
  size_t size;
  unsigned char seed;
};

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint32_t next(void) {
  rng_state = rng_state * 6364136223846793005u + 1442695040888963407u;
  return (uint32_t)(rng_state >> 33);
}

static size_t pick_size(void) {
  uint32_t r = next() % 1000;
  if (r < 900) return 1 + next() % 512;          // small: bins / brk heap
  if (r < 990) return 513 + next() % 65536;      // medium
  return 131072 + next() % (1u << 20);          // large: mmap threshold and above
}

static void fill(struct slot *s, size_t from) {
  for (size_t i = from; i < s->size; i++) s->p[i] = (unsigned char)(s->seed + i * 31);
}

static int intact(const struct slot *s, size_t upto) {
  for (size_t i = 0; i < upto; i++)
    if (s->p[i] != (unsigned char)(s->seed + i * 31)) return 0;
  return 1;
}

int main(void) {
  static struct slot slots[SLOTS];
  size_t live = 0, peak = 0;
  unsigned long mallocs = 0, callocs = 0, reallocs = 0, frees = 0;
  for (int op = 0; op < OPERATIONS; op++) {
    struct slot *s = &slots[next() % SLOTS];
    if (s->p == NULL) {
      s->size = pick_size();
      s->seed = (unsigned char)next();
      if (next() % 8 == 0) {
        s->p = calloc(1, s->size);
        callocs++;
        if (s->p != NULL)
          for (size_t i = 0; i < s->size; i++)
            if (s->p[i] != 0) {
              fprintf(stderr, "malloc_stress: calloc(%zu) byte %zu is not zero\n", s->size, i);
              return 1;
            }
      } else {
        s->p = malloc(s->size);
        mallocs++;
      }
      if (s->p == NULL) {
        fprintf(stderr, "malloc_stress: allocation of %zu bytes failed at operation %d\n", s->size, op);
        return 1;
      }
      fill(s, 0);
      live += s->size;
    } else if (!intact(s, s->size)) {
      fprintf(stderr, "malloc_stress: block of %zu bytes was corrupted (operation %d)\n", s->size, op);
      return 1;
    } else if (next() % 4 == 0) {
      size_t old = s->size, size = pick_size();
      unsigned char *p = realloc(s->p, size);
      reallocs++;
      if (p == NULL) {
        fprintf(stderr, "malloc_stress: realloc to %zu bytes failed at operation %d\n", size, op);
        return 1;
      }
      s->p = p;
      s->size = size;
      if (!intact(s, old < size ? old : size)) {
        fprintf(stderr, "malloc_stress: realloc from %zu to %zu bytes lost the contents\n", old, size);
        return 1;
      }
      fill(s, old < size ? old : size);
      live = live - old + size;
    } else {
      free(s->p);
      frees++;
      live -= s->size;
      s->p = NULL;
    }
    if (live > peak) peak = live;
  }
  for (int i = 0; i < SLOTS; i++) {
    if (slots[i].p != NULL && !intact(&slots[i], slots[i].size)) {
      fprintf(stderr, "malloc_stress: block in slot %d was corrupted\n", i);
      return 1;
    }
    free(slots[i].p);
  }
  printf("malloc stress: %d operations (%lu malloc, %lu calloc, %lu realloc, %lu free), all blocks intact\n",
         OPERATIONS, mallocs, callocs, reallocs, frees);
  printf("peak live bytes: %zu\n", peak);
  return 0;
}
