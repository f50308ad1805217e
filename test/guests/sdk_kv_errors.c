/* Answers "r=<result>" for one key-value call, the key-value SDK functions' return value as is:
 *   /get?key=K&cap=N   te_kv_get of K into a buffer of N bytes (default 64), also "value=..."
 *   /set?key=K&len=N   te_kv_set of N bytes of 'v' (default 1) under K
 *   /delete?key=K      te_kv_delete of K
 *   /incr?key=K&delta=D             te_kv_increment of K by D (default 1), also "value=..."
 *   /cas?key=K&expect=E&value=V     te_kv_compare_and_set of K from E to V (no expect: absent)
 * K is form-decoded; "?long=N" instead of a key uses a key of N 'k' bytes. */
#include <tinyedge.h>

#define MiB (1024 * 1024)

static char big[2 * MiB];
static char key[4096];
static char buf[4096];
static char out[8192];

static int path_is(const te_request *req, const char *p) {
    return req->path.len == strlen(p) && memcmp(req->path.ptr, p, req->path.len) == 0;
}

static long number(const te_request *req, const char *name, long otherwise) {
    char digits[32];
    return te_query_param(req, name, digits, sizeof digits) > 0 ? atol(digits) : otherwise;
}

static void on_request(const te_request *req) {
    long r, len = number(req, "long", -1);
    if (len >= 0 && len < (long)sizeof key) { memset(key, 'k', (size_t)len); key[len] = '\0'; }
    else if (te_query_param(req, "key", key, sizeof key) < 0) key[0] = '\0';
    int n;
    if (path_is(req, "/get")) {
        long cap = number(req, "cap", 64);
        r = te_kv_get(key, buf, (size_t)cap);
        n = snprintf(out, sizeof out, "r=%ld value=%.*s\n", r, (int)(r > 0 ? (r < cap ? r : cap) : 0), buf);
    } else if (path_is(req, "/set")) {
        r = te_kv_set(key, big, (size_t)number(req, "len", 1));
        n = snprintf(out, sizeof out, "r=%ld\n", r);
    } else if (path_is(req, "/incr")) {
        char digits[32];
        int64_t value = 0;
        r = te_kv_increment(key, te_query_param(req, "delta", digits, sizeof digits) > 0 ? strtoll(digits, NULL, 10) : 1, &value);
        n = snprintf(out, sizeof out, "r=%ld value=%lld\n", r, (long long)value);
    } else if (path_is(req, "/cas")) {
        static char expect[256], value[256];
        long elen = te_query_param(req, "expect", expect, sizeof expect);
        long vlen = te_query_param(req, "value", value, sizeof value);
        r = te_kv_compare_and_set(key, elen >= 0 ? expect : NULL, elen >= 0 ? (size_t)elen : 0, value, vlen > 0 ? (size_t)vlen : 0);
        n = snprintf(out, sizeof out, "r=%ld\n", r);
    } else if (path_is(req, "/delete")) {
        r = te_kv_delete(key);
        n = snprintf(out, sizeof out, "r=%ld\n", r);
    } else {
        n = snprintf(out, sizeof out, "unknown\n");
    }
    te_respond(200, "text/plain", out, (size_t)n);
}

int main(void) {
    memset(big, 'v', sizeof big);
    te_on_request(on_request);
    te_wait_for_requests();
}
