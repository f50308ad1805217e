/* SDK program for the HTTP round trip: echoes a request header, the method and the body, sets
 * response headers and a cache policy with tags. */
#include <tinyedge.h>

static char body[64 * 1024];
static char echoed[256];

static void on_request(const te_request *req) {
    size_t len = 0;
    const char *v = te_request_header(req, "x-test", &len);
    snprintf(echoed, sizeof echoed, "%.*s", (int)len, v ? v : "");
    int n = snprintf(body, sizeof body, "method=%.*s x-test=%s body=%.*s\n", (int)req->method.len, req->method.ptr, echoed,
                     (int)req->body.len, req->body.ptr);
    te_respond(201, "text/plain; charset=utf-8", body, (size_t)n);
    te_header_add("X-Echo-Test", echoed);
    te_header_add("X-Program", "sdk_headers");
    te_cache(30, 5, 60);
    te_cache_tags("product-1 catalog");
    te_log("served a request");
}

int main(void) {
    te_on_request(on_request);
    wait_for_requests();
}
