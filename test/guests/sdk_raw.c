/* SDK program for the raw program path's tests: its answer depends on the path, and its body
 * lists every request header it was given, so a test can compare what the program saw and said on
 * the raw path and on the full one.
 *   /store   cacheable for 60 s, with a surrogate key
 *   /private uncacheable, unless the request carries "x-store: 1" (then as /store)
 *   /spin    loops until its time limit
 *   /crash   writes through a null pointer
 *   /empty   204, no body
 *   /via     answers with a Via field of its own
 *   else     uncacheable */
#include <tinyedge.h>

static char body[16 * 1024];

static int path_is(const te_request *req, const char *p) {
    size_t n = strlen(p);
    return req->path.len == n && memcmp(req->path.ptr, p, n) == 0;
}

static void on_request(const te_request *req) {
    if (path_is(req, "/spin")) for (;;) __asm__ volatile("" ::: "memory");
    if (path_is(req, "/crash")) *(volatile int *)0 = 1;
    if (path_is(req, "/empty")) {
        te_status(204);
        te_uncacheable();
        return;
    }
    int n = snprintf(body, sizeof body, "%.*s %.*s\n", (int)req->method.len, req->method.ptr, (int)req->url.len, req->url.ptr);
    for (uint32_t i = 0; i < req->header_count && n < (int)sizeof body - 512; i++) {
        const te_header *h = &req->headers[i];
        n += snprintf(body + n, sizeof body - (size_t)n, "%.*s: %.*s\n", (int)h->name.len, h->name.ptr, (int)h->value.len, h->value.ptr);
    }
    te_respond(200, "text/plain; charset=utf-8", body, (size_t)n);
    te_header_add("X-Program", "sdk_raw");
    if (path_is(req, "/via")) te_header_add("Via", "1.0 app");
    size_t len = 0;
    const char *store = te_request_header(req, "x-store", &len);
    if (path_is(req, "/store") || (path_is(req, "/private") && store && len == 1 && store[0] == '1')) {
        te_cache(60, 0, 0);
        te_cache_tags("raw-stored");
    } else {
        te_uncacheable();
    }
    te_log("answered");
}

int main(void) {
    te_on_request(on_request);
    wait_for_requests();
}
