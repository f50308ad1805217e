/* hello_persistent: the hello program for a persistent lifecycle (config `lifecycle: persistent`).
 * It keeps a count of the requests its instance has answered, which survives from request to
 * request, and says it in X-Count; GET /count answers only that number, uncached. The count is
 * also what it hands a new version on a live upload, which goes on from it. */
#include <tinyedge.h>

static long count;
static char header[32];
static char state[32];

static void on_request(const te_request *req) {
    count++;
    snprintf(header, sizeof header, "%ld", count);
    if (req->path.len == 6 && memcmp(req->path.ptr, "/count", 6) == 0) {
        te_respond_str(200, "text/plain; charset=utf-8", header);
        te_uncacheable();
        return;
    }
    te_respond_str(200, "text/plain; charset=utf-8", "hello, world\n");
    te_header_add("X-Count", header);
    te_cache(60, 10, 0);
}

static size_t save(const void **data) {
    *data = state;
    return (size_t)snprintf(state, sizeof state, "%ld", count);
}

static void restore(const void *data, size_t len) {
    char text[32];
    if (len >= sizeof text) return;
    memcpy(text, data, len);
    text[len] = '\0';
    count = atol(text);
}

int main(void) {
    te_on_request(on_request);
    te_on_live_update(save);
    te_on_live_restore(restore);
    te_wait_for_requests();
}
