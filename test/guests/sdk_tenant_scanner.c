/* Tenant B of the cross-tenant isolation test: counts the words of tenant A's MARKER
 * (test/guests/sdk_tenant_marker.c) in all the memory it can read — its .data and .bss, the whole
 * arena (heap and mappings, used or not) and the whole stack — once at init and again in every
 * request, and answers "init=N request=N". The arena's end and the stack's bounds are the host's
 * layout, so they come in the environment (ARENA_END, STACK_BOTTOM, STACK_TOP, in hex).
 * /plant first writes the marker into its own heap, which the scan must find: that shows the scan
 * works; the request after it must find nothing again. */
#include <tinyedge.h>
#include <stdint.h>

#define MARKER 0x214b41454c2d4154ull /* "TA-LEAK!" */

extern char __data_start[], _end[];

static uintptr_t arena_end, stack_bottom, stack_top;
static size_t found_at_init;
static char body[128];

static uintptr_t env_hex(const char *name) {
    const char *v = getenv(name);
    return v ? (uintptr_t)strtoull(v, NULL, 16) : 0;
}

/* Marker words in [from, to); the marker is only ever an immediate in this program's code. */
__attribute__((noinline)) static size_t count(uintptr_t from, uintptr_t to) {
    size_t n = 0;
    for (const volatile uint64_t *p = (const volatile uint64_t *)((from + 7) & ~(uintptr_t)7); (uintptr_t)(p + 1) <= to; p++)
        if (*p == MARKER) n++;
    return n;
}

static size_t scan(void) {
    uintptr_t arena_start = ((uintptr_t)_end + 4095) & ~(uintptr_t)4095;
    return count((uintptr_t)__data_start, (uintptr_t)_end) + count(arena_start, arena_end) + count(stack_bottom, stack_top);
}

static int path_is(const te_request *req, const char *p) {
    return req->path.len == strlen(p) && memcmp(req->path.ptr, p, req->path.len) == 0;
}

static void on_request(const te_request *req) {
    if (path_is(req, "/plant")) {
        volatile uint64_t *own = malloc(4096); /* never freed: the reset takes it back */
        if (own) for (int i = 0; i < 512; i++) own[i] = MARKER;
    }
    int n = snprintf(body, sizeof body, "init=%zu request=%zu\n", found_at_init, scan());
    te_respond(200, "text/plain", body, (size_t)n);
}

int main(void) {
    arena_end = env_hex("ARENA_END");
    stack_bottom = env_hex("STACK_BOTTOM");
    stack_top = env_hex("STACK_TOP");
    if (!arena_end || !stack_bottom || !stack_top) return 2;
    found_at_init = scan();
    te_on_request(on_request);
    te_wait_for_requests();
}
