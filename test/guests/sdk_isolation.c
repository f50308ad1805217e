/* SDK program for isolation tests: every request reports the state it found (memory and AVX
 * registers), then dirties it.
 * If any request saw state left by an earlier one, "clean" would turn into "DIRTY". */
#include <tinyedge.h>
#include <stdint.h>

static int global_counter;              /* .bss */
static char data_word[16] = "pristine";  /* .data */
static char *heap_block;                 /* allocated at init */
static __thread int tls_counter;         /* thread-local storage */
static volatile uintptr_t stack_probe;   /* address of a stack buffer seen at init */
static char body[512];

/* What a request's deep_stack() fills its frame with: "SSSSSSSS". A reset that missed a stack
 * page would leave whole words of it behind. A lone 'S' byte proves nothing: the stack
 * protector's canary (seven random bytes after a zero) and pointers land in this range too, and
 * one of their bytes is an 'S' in about one snapshot in 37. */
#define REQUEST_WORD 0x5353535353535353ull
/* What init leaves there instead: "\0SSSSSSS", a canary whose seven random bytes all came out 'S',
 * so that the check is shown to ignore such bytes in every run, not in one run in 37. */
#define INIT_WORD 0x5353535353535300ull

__attribute__((noinline)) static void deep_stack(int request) {
    volatile uint64_t frame[1024];
    stack_probe = (uintptr_t)frame;
    for (int i = 0; i < 1024; i++) frame[i] = request ? REQUEST_WORD : INIT_WORD;
}

static int stack_clean(void) {
    /* The request's stack starts where the snapshot's did, so this reads the same words an earlier
     * request's deep_stack() wrote: they must be gone. */
    volatile uint64_t *p = (volatile uint64_t *)stack_probe;
    for (int i = 0; i < 1024; i++) if (p[i] == REQUEST_WORD) return 0;
    return 1;
}

/* Reads ymm15 (no compiler-generated code touches it here), then leaves a marker in it. */
static int vector_registers_clean(void) {
    unsigned char seen[32], marker[32];
    memset(marker, 0x5a, sizeof marker);
    __asm__ volatile("vmovdqu %%ymm15, %0" : "=m"(seen));
    __asm__ volatile("vmovdqu %0, %%ymm15" : : "m"(marker) : "xmm15");
    return memcmp(seen, marker, sizeof seen) != 0;
}

static void on_request(const te_request *req) {
    (void)req;
    int vectors_ok = vector_registers_clean();
    int heap_clean = 1;
    for (int i = 0; i < 65536; i++) if (heap_block[i] != 0) { heap_clean = 0; break; }
    int stack_ok = stack_clean();
    int n = snprintf(body, sizeof body, "global=%d data=%s heap=%s tls=%d stack=%s ymm=%s\n", global_counter, data_word,
                     heap_clean ? "clean" : "DIRTY", tls_counter, stack_ok ? "clean" : "DIRTY", vectors_ok ? "clean" : "DIRTY");
    global_counter++;
    tls_counter++;
    memcpy(data_word, "CHANGED", 8);
    memset(heap_block, 'H', 65536);
    char *leak = malloc(1 << 20); /* never freed: the reset takes it back */
    if (leak) memset(leak, 'L', 1 << 20);
    deep_stack(1);
    te_respond(200, "text/plain", body, (size_t)n);
}

int main(void) {
    heap_block = calloc(1, 65536);
    deep_stack(0);
    te_on_request(on_request);
    wait_for_requests();
}
