/* SDK program that hands the host bogus pointers and lengths through every hypercall, by path:
 *   /log       LOG with a pointer outside guest memory (-EFAULT), then an over-long length (cut to 4 KiB)
 *   /fetch     FETCH with a te_fetch outside memory, then one whose strings point outside
 *   /kv        KV_GET / KV_SET / KV_DELETE with bogus te_kv, key and value pointers
 *   /body      a response whose body pointer is outside memory (the request fails)
 *   /headers   a response whose header array pointer is outside memory (the request fails)
 *   /hugelen   a response whose body length is 2^62 (the request fails)
 *   /wait      WAIT with a response pointer outside memory (the request fails)
 * The calls that return report their results: every one must be negative (an errno). */
#include <tinyedge.h>

#define BOGUS ((long)0xdead0000)
#define KERNEL ((long)0xffff800000000000)
static char body[512];

static int path_is(const te_request *req, const char *p) {
    return req->path.len == strlen(p) && memcmp(req->path.ptr, p, req->path.len) == 0;
}

static void on_request(const te_request *req) {
    int n = 0;
    if (path_is(req, "/log")) {
        long a = te__hypercall(TE_CALL_LOG, BOGUS, 100);
        long b = te__hypercall(TE_CALL_LOG, (long)body, 1L << 40);
        n = snprintf(body, sizeof body, "log=%ld,%ld\n", a, b);
    } else if (path_is(req, "/fetch")) {
        long a = te__hypercall(TE_CALL_FETCH, BOGUS, 0);
        te_fetch f;
        memset(&f, 0, sizeof f);
        f.url.ptr = (const char *)KERNEL; f.url.len = 10;
        long b = te__hypercall(TE_CALL_FETCH, (long)&f, 0);
        n = snprintf(body, sizeof body, "fetch=%ld,%ld\n", a, b);
    } else if (path_is(req, "/kv")) {
        long a = te__hypercall(TE_CALL_KV_GET, BOGUS, 0);
        te_kv kv = { { (const char *)BOGUS, 8 }, NULL, 0 };
        long b = te__hypercall(TE_CALL_KV_SET, (long)&kv, 0);
        te_kv kv2 = { { "key", 3 }, (char *)BOGUS, 4096 };
        long c = te__hypercall(TE_CALL_KV_SET, (long)&kv2, 0);
        long d = te__hypercall(TE_CALL_KV_GET, (long)&kv2, 0);
        n = snprintf(body, sizeof body, "kv=%ld,%ld,%ld,%ld\n", a, b, c, d);
    } else if (path_is(req, "/body")) {
        te_respond(200, "text/plain", (const void *)BOGUS, 10);
        return;
    } else if (path_is(req, "/headers")) {
        te_respond_str(200, "text/plain", "x");
        te__response.headers = (const te_header *)KERNEL;
        return;
    } else if (path_is(req, "/hugelen")) {
        te_respond(200, "text/plain", body, (size_t)1 << 62);
        return;
    } else if (path_is(req, "/wait")) {
        te__hypercall(TE_CALL_WAIT, BOGUS, 0);
        return;
    } else {
        n = snprintf(body, sizeof body, "fine\n");
    }
    te_respond(200, "text/plain", body, (size_t)n);
}

int main(void) {
    te_on_request(on_request);
    wait_for_requests();
}
