/* Tenant A of the cross-tenant isolation test: fills every kind of memory it has with MARKER —
 * .bss, thread-locals, heap, an anonymous mapping, the stack — at init (so its snapshot holds the
 * marker) and again in every request. /spin goes on writing it until the time limit; /crash
 * writes it, then dereferences NULL. test/guests/sdk_tenant_scanner.c looks for it. */
#include <tinyedge.h>
#include <stdint.h>
#include <sys/mman.h>

#define MARKER 0x214b41454c2d4154ull /* "TA-LEAK!" */
#define HEAP_BYTES (512 << 10)
#define MAPPED_BYTES (2 << 20)

static uint64_t bss_block[64 * 1024 / 8];
static __thread uint64_t tls_block[4096 / 8];

static void fill(volatile uint64_t *p, size_t bytes) {
    for (size_t i = 0; i < bytes / 8; i++) p[i] = MARKER;
}

__attribute__((noinline)) static void fill_stack(void) {
    volatile uint64_t frame[64 * 1024 / 8];
    fill(frame, sizeof frame);
}

/* Returns 0 when an allocation failed (then not everything holds the marker). */
static int mark_everything(void) {
    fill(bss_block, sizeof bss_block);
    fill(tls_block, sizeof tls_block);
    fill_stack();
    uint64_t *heap = malloc(HEAP_BYTES); /* never freed: the reset takes it back */
    void *mapped = mmap(NULL, MAPPED_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (!heap || mapped == MAP_FAILED) return 0;
    fill(heap, HEAP_BYTES);
    fill(mapped, MAPPED_BYTES);
    return 1;
}

static int path_is(const te_request *req, const char *p) {
    return req->path.len == strlen(p) && memcmp(req->path.ptr, p, req->path.len) == 0;
}

static void on_request(const te_request *req) {
    if (!mark_everything()) { te_respond_str(500, "text/plain", "out of memory\n"); return; }
    if (path_is(req, "/spin")) for (;;) fill_stack();
    if (path_is(req, "/crash")) { volatile int *p = 0; *p = 1; }
    te_respond_str(200, "text/plain", "marked\n");
}

int main(void) {
    if (!mark_everything()) return 1;
    te_on_request(on_request);
    te_wait_for_requests();
}
