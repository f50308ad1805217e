/* The program of the soak's "beta" tenant (bench/soak.ts, test/soak/soak.test.ts), in all three
 * roles, so one tenant exercises generation, both hooks, sub-requests and the key-value store:
 *   generate /b/app/page/K   "page K\n", cached by its own policy (ttl 2 s, grace 30 s)
 *            /b/app/fetch/K  a sub-request for /b/sub/K to the default origin: 200 "fetched S len=N\n"
 *                            when the origin answers 2xx, else 502 with X-Soak-Fetch: failed and the
 *                            status or -errno in the body (the route's documented error, which the
 *                            soak expects only while its origin is in trouble); never cached
 *            /b/app/count    te_kv_increment of "count": "count=N\n" (every N distinct), never cached
 *            /b/app/private  "private\n" with a 60 s policy, which recv's pass keeps out of the cache
 *            /b/app/kv/K     te_kv_set of "kv-K" then te_kv_get of it: "kv K=V\n", never cached
 *   recv     /b/legacy/REST  rewritten to /b/c/REST; /b/app/private passes the cache; every request
 *                            gets X-Soak-Recv: 1 (the origin checks it)
 *   deliver  every response it sees gets X-Soak-Deliver: STATUS */
#include <tinyedge.h>

static char body[1024];
static char fetched[65536];
static char url_buf[512];
static char key_buf[300];
static char value_buf[300];
static char got_buf[300];
static char status_buf[32];

static int starts_with(te_str s, const char *p) { size_t n = strlen(p); return s.len >= n && memcmp(s.ptr, p, n) == 0; }

/* The path after `prefix`, at most 200 bytes, as a C string in `out`. */
static const char *rest(te_str path, const char *prefix, char *out) {
    size_t n = strlen(prefix), len = path.len - n;
    if (len > 200) len = 200;
    memcpy(out, path.ptr + n, len);
    out[len] = 0;
    return out;
}

static void generate(const te_request *req) {
    char k[256];
    int n;
    if (starts_with(req->path, "/b/app/page/")) {
        n = snprintf(body, sizeof body, "page %s\n", rest(req->path, "/b/app/page/", k));
        te_cache(2, 30, 0);
        te_respond(200, "text/plain", body, (size_t)n);
    } else if (starts_with(req->path, "/b/app/fetch/")) {
        size_t len = 0;
        snprintf(url_buf, sizeof url_buf, "/b/sub/%s", rest(req->path, "/b/app/fetch/", k));
        int status = te_fetch_origin(NULL, url_buf, fetched, sizeof fetched, &len);
        te_uncacheable();
        if (status >= 200 && status < 300) {
            n = snprintf(body, sizeof body, "fetched %d len=%zu\n", status, len);
            te_respond(200, "text/plain", body, (size_t)n);
        } else {
            n = snprintf(body, sizeof body, "fetch failed: %d\n", status);
            te_header_add("X-Soak-Fetch", "failed");
            te_respond(502, "text/plain", body, (size_t)n);
        }
    } else if (starts_with(req->path, "/b/app/count")) {
        int64_t v = 0;
        int r = te_kv_increment("count", 1, &v);
        te_uncacheable();
        n = r == 0 ? snprintf(body, sizeof body, "count=%lld\n", (long long)v) : snprintf(body, sizeof body, "increment failed: %d\n", r);
        te_respond(r == 0 ? 200 : 500, "text/plain", body, (size_t)n);
    } else if (starts_with(req->path, "/b/app/kv/")) {
        rest(req->path, "/b/app/kv/", k);
        snprintf(key_buf, sizeof key_buf, "key-%s", k);
        int vn = snprintf(value_buf, sizeof value_buf, "kv-%s", k);
        int set = te_kv_set(key_buf, value_buf, (size_t)vn);
        long got = te_kv_get(key_buf, got_buf, sizeof got_buf - 1);
        te_uncacheable();
        if (set != 0 || got < 0) {
            n = snprintf(body, sizeof body, "kv failed: set %d get %ld\n", set, got);
            te_respond(500, "text/plain", body, (size_t)n);
        } else {
            got_buf[got < (long)sizeof got_buf - 1 ? got : (long)sizeof got_buf - 1] = 0;
            n = snprintf(body, sizeof body, "kv %s=%s\n", k, got_buf);
            te_respond(200, "text/plain", body, (size_t)n);
        }
    } else if (starts_with(req->path, "/b/app/private")) {
        te_cache(60, 30, 0); /* recv passed it: stored never, whatever this says */
        te_respond_str(200, "text/plain", "private\n");
    } else if (req->path.len == strlen("/b/app/") && starts_with(req->path, "/b/app/")) {
        te_respond_str(200, "text/plain", "soak app\n"); /* the load's check request */
    } else {
        te_respond_str(404, "text/plain", "no such soak route\n");
    }
}

static void recv(const te_request *req) {
    if (starts_with(req->path, "/b/app/private")) { te_recv_pass(); return; }
    if (starts_with(req->url, "/b/legacy/")) {
        snprintf(url_buf, sizeof url_buf, "/b/c/%.*s", (int)(req->url.len - 10 > 400 ? 400 : req->url.len - 10), req->url.ptr + 10);
        te_recv_rewrite_url(url_buf);
    }
    te_set_header("X-Soak-Recv", "1");
}

static void deliver(const te_request *req) {
    snprintf(status_buf, sizeof status_buf, "%u", req->resp_status);
    te_set_header("X-Soak-Deliver", status_buf);
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
