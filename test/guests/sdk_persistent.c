/* SDK program with state to keep: every request counts itself into `count` (a global) and answers
 * "count=N warm=W flags=F kv=K" (W: the warm-up requests flagged TE_REQUEST_PRESNAPSHOT it has counted,
 * F: the request's flags).
 * In a persistent instance the count grows from request to request until a reset; in an
 * ephemeral one it always reads 1 (plus what the snapshot holds). By path:
 *   /fault       NULL dereference          /spin    never ends
 *   /reset       asks for a reset after this response (te_reset_after())
 *   /reset-bad   asks for a reset, then returns without responding (a bad response)
 *   /all-flags   sets every flag bit of its response, TE_RESET_AFTER among them
 *   /grow?kb=N   writes N KiB of memory it has not written before (dirty pages)
 *   /sleep?ms=N  spins N ms of wall-clock time, then answers like any request
 *   /warm-fail   answers 500 (a warm-up to this path fails the load)
 *   /kv          answers "kv=V count=N": V, the value of key "k" in the store (a host call)
 *   /log         logs "log N" (te_log) and writes "err N" to stderr before answering
 * On a live update it hands its count to the next version (te_on_live_update / te_on_live_restore).
 * A warm-up request before the snapshot also keeps what te_kv_get answered it (kv=, -ENOSYS). */
#include <tinyedge.h>
#include <time.h>

static long count;
static long warm;
static long warm_kv;
static char body[128];
static char grown[8 << 20];
static size_t grown_at;

static int path_is(const te_request *req, const char *p) {
    return req->path.len == strlen(p) && memcmp(req->path.ptr, p, req->path.len) == 0;
}

static long param(const te_request *req, const char *name, long fallback) {
    char arg[16];
    return te_query_param(req, name, arg, sizeof arg) > 0 ? atol(arg) : fallback;
}

static void on_request(const te_request *req) {
    count++;
    if (te_is_presnapshot(req)) {
        warm++;
        warm_kv = te_kv_get("k", body, sizeof body);
    }
    if (path_is(req, "/kv")) {
        char v[64];
        long n = te_kv_get("k", v, sizeof v - 1);
        int m = snprintf(body, sizeof body, "kv=%.*s count=%ld\n", (int)(n < 0 ? 0 : n < 63 ? n : 63), v, count);
        te_respond(200, "text/plain", body, (size_t)m);
        return;
    }
    if (path_is(req, "/log")) { te_logf("log %ld", count); fprintf(stderr, "err %ld\n", count); }
    if (path_is(req, "/warm-fail")) { te_respond_str(500, "text/plain", "no\n"); return; }
    if (path_is(req, "/fault")) { volatile int *p = 0; *p = 1; }
    if (path_is(req, "/spin")) { for (;;) __asm__ volatile(""); }
    if (path_is(req, "/reset-bad")) { te_reset_after(); return; }
    if (path_is(req, "/grow")) {
        size_t n = (size_t)param(req, "kb", 0) * 1024;
        if (n > sizeof grown - grown_at) n = sizeof grown - grown_at;
        memset(grown + grown_at, 1, n);
        grown_at += n;
    }
    if (path_is(req, "/sleep")) {
        long ms = param(req, "ms", 10);
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do clock_gettime(CLOCK_MONOTONIC, &t);
        while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
    }
    int n = snprintf(body, sizeof body, "count=%ld warm=%ld flags=%u kv=%ld\n", count, warm, req->flags, warm_kv);
    te_respond(200, "text/plain", body, (size_t)n);
    if (path_is(req, "/reset")) te_reset_after();
    if (path_is(req, "/all-flags")) te__response.flags = 0xffffffffu;
}

/* Live update: the count goes to the next version, which goes on from it. */
static char state[32];
static size_t save(const void **data) {
    int n = snprintf(state, sizeof state, "%ld", count);
    *data = state;
    return (size_t)n;
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
