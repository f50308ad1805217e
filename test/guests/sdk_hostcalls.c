/* SDK program that uses every host call and both hook phases:
 *   generate: /fetch (sub-request to the default origin), /kv/incr (counter in the KV store,
 *             read and written back), /kv/atomic (counter "hits", te_kv_increment), /kv/get, /kv/del
 *   recv:     /pass -> pass, /old/... -> rewritten to /new/..., /blocked -> synthetic 403,
 *             anything else -> lookup with X-Recv: seen
 *   deliver:  adds X-Delivered with the status it saw */
#include <tinyedge.h>

static char body[8192];
static char fetched[4096];
static char url_buf[512];
static char status_buf[32];

static int starts_with(te_str s, const char *p) { size_t n = strlen(p); return s.len >= n && memcmp(s.ptr, p, n) == 0; }

static void generate(const te_request *req) {
    int n;
    if (starts_with(req->path, "/fetch")) {
        size_t len = 0;
        int status = te_fetch_origin(NULL, "/data?from=guest", fetched, sizeof fetched, &len);
        n = snprintf(body, sizeof body, "status=%d len=%zu body=%.*s\n", status, len, (int)(len < sizeof fetched ? len : sizeof fetched), fetched);
    } else if (starts_with(req->path, "/kv/incr")) {
        char value[32] = {0};
        long len = te_kv_get("counter", value, sizeof value - 1);
        long counter = len > 0 ? atol(value) : 0;
        counter++;
        int vn = snprintf(value, sizeof value, "%ld", counter);
        int ok = te_kv_set("counter", value, (size_t)vn);
        n = snprintf(body, sizeof body, "counter=%ld stored=%d\n", counter, ok);
    } else if (starts_with(req->path, "/kv/atomic")) {
        int64_t hits = 0;
        int r = te_kv_increment("hits", 1, &hits);
        n = snprintf(body, sizeof body, "hits=%lld r=%d\n", (long long)hits, r);
    } else if (starts_with(req->path, "/kv/big")) {
        static char big[4096];
        memset(big, 'b', sizeof big);
        int ok = te_kv_set("big", big, sizeof big);
        n = snprintf(body, sizeof body, "stored=%d\n", ok);
    } else if (starts_with(req->path, "/kv/del")) {
        n = snprintf(body, sizeof body, "deleted=%d\n", te_kv_delete("counter"));
    } else {
        n = snprintf(body, sizeof body, "generated %.*s\n", (int)req->url.len, req->url.ptr);
    }
    te_respond(200, "text/plain", body, (size_t)n);
}

static void recv(const te_request *req) {
    if (starts_with(req->path, "/pass")) { te_recv_pass(); return; }
    if (starts_with(req->path, "/blocked")) { te_respond_str(403, "text/plain", "blocked by recv\n"); return; }
    if (starts_with(req->path, "/old/")) {
        snprintf(url_buf, sizeof url_buf, "/new/%.*s", (int)(req->url.len - 5), req->url.ptr + 5);
        te_recv_rewrite_url(url_buf);
    }
    te_set_header("X-Recv", "seen");
}

static void deliver(const te_request *req) {
    snprintf(status_buf, sizeof status_buf, "status-%u", req->resp_status);
    te_set_header("X-Delivered", status_buf);
}

static void on_request(const te_request *req) {
    switch (req->phase) {
    case TE_PHASE_RECV: recv(req); break;
    case TE_PHASE_DELIVER: deliver(req); break;
    default: generate(req);
    }
}

int main(void) {
    te_on_request(on_request);
    wait_for_requests();
}
