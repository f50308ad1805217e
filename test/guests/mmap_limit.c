// Asking for more memory than the sandbox has fails cleanly inside the guest. Run it with a
// memory limit well under 1 GiB (tinyedge --memory 64MiB; natively: prlimit --as=134217728):
// mmap of 1 GiB returns MAP_FAILED with ENOMEM, malloc of 1 GiB returns NULL, allocating and
// touching 1 MiB blocks eventually returns NULL (after at least 8 of them), and once they are
// freed a 1 MiB block can be allocated again.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MIB (1u << 20)
#define MAX_BLOCKS 4096

int main(void) {
  void *p = mmap(NULL, 1024u * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p != MAP_FAILED) {
    fprintf(stderr, "mmap_limit: mmap of 1 GiB succeeded; run under a memory limit\n");
    return 1;
  }
  if (errno != ENOMEM) {
    fprintf(stderr, "mmap_limit: mmap of 1 GiB failed with errno %d (%s), expected ENOMEM\n", errno, strerror(errno));
    return 1;
  }
  printf("mmap 1 GiB: MAP_FAILED with ENOMEM\n");

  void *big = malloc(1024u * MIB);
  if (big != NULL) {
    fprintf(stderr, "mmap_limit: malloc of 1 GiB succeeded\n");
    return 1;
  }
  printf("malloc 1 GiB: NULL\n");

  static char *blocks[MAX_BLOCKS];
  int n = 0;
  while (n < MAX_BLOCKS && (blocks[n] = malloc(MIB)) != NULL) {
    memset(blocks[n], n & 0xff, MIB);
    n++;
  }
  if (n == MAX_BLOCKS || n < 8) {
    fprintf(stderr, "mmap_limit: got %d blocks of 1 MiB before NULL, expected between 8 and %d\n", n, MAX_BLOCKS - 1);
    return 1;
  }
  for (int i = 0; i < n; i++) {
    if (blocks[i][0] != (char)(i & 0xff) || blocks[i][MIB - 1] != (char)(i & 0xff)) {
      fprintf(stderr, "mmap_limit: block %d was overwritten\n", i);
      return 1;
    }
    free(blocks[i]);
  }
  printf("malloc 1 MiB blocks until NULL: stopped cleanly after at least 8\n");

  char *again = malloc(MIB);
  if (again == NULL) {
    fprintf(stderr, "mmap_limit: malloc of 1 MiB failed after freeing %d blocks\n", n);
    return 1;
  }
  memset(again, 1, MIB);
  free(again);
  printf("after freeing them, malloc 1 MiB: ok\n");
  return 0;
}
