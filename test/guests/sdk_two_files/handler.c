/* The handler of the two-file program (main.c): answers with the path and a header. */
#include <tinyedge.h>

static char body[256];

static void on_request(const te_request *req) {
    int n = snprintf(body, sizeof body, "handled %.*s in handler.c\n", (int)req->path.len, req->path.ptr);
    te_respond(200, "text/plain", body, (size_t)n);
    te_header_add("X-File", "handler.c");
    te_cache(30, -1, -1);
}

void register_handler(void) { te_on_request(on_request); }
