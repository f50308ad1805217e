/* SDK program that hands KV_GET / KV_SET / LOG hostile sizes, by path; each answers "r=<result>"
 * with status 200 (the last host call's return value):
 *   /key-empty      KV_SET with an empty key
 *   /key-long       KV_SET with a key of 1025 bytes;  /key-max: 1024 bytes (allowed)
 *   /key-huge       KV_GET with a key length of 2^64 - 1
 *   /value-long     KV_SET of 1 MiB + 1 bytes;        /value-max: exactly 1 MiB (allowed)
 *   /value-40m      KV_SET of a 40 MiB value
 *   /value-huge     KV_SET with a value length of 2^64 - 1
 *   /get-bad-buf    KV_GET into a buffer outside guest memory
 *   /get-huge-cap   KV_GET into a good buffer whose capacity runs past the end of guest memory
 *   /delete-junk    KV_DELETE with a junk value pointer and length (ignored by delete)
 *   /log-huge       LOG of a good pointer with a length of 2^63
 *   /log-many       2000 LOG calls of 4 KiB each (20 times the lines a request keeps)
 *   /stderr-many    64 KiB of one-character lines on stderr
 * Anything else answers "fine". */
#include <tinyedge.h>
#include <unistd.h>

#define BOGUS ((char *)0xdead0000)
#define MiB (1024 * 1024)

static char big[40 * MiB];
static char small[64];
static char body[128];

static int path_is(const te_request *req, const char *p) {
    return req->path.len == strlen(p) && memcmp(req->path.ptr, p, req->path.len) == 0;
}

static long kv(long call, const char *key, uint64_t key_len, char *value, uint64_t value_len) {
    te_kv k = { { key, key_len }, value, value_len };
    return te__hypercall(call, (long)&k, 0);
}

static void on_request(const te_request *req) {
    long r = 0;
    if (path_is(req, "/key-empty")) r = kv(TE_CALL_KV_SET, "", 0, small, 1);
    else if (path_is(req, "/key-long")) r = kv(TE_CALL_KV_SET, big, 1025, small, 1);
    else if (path_is(req, "/key-max")) r = kv(TE_CALL_KV_SET, big, 1024, small, 1);
    else if (path_is(req, "/key-huge")) r = kv(TE_CALL_KV_GET, big, UINT64_MAX, small, sizeof small);
    else if (path_is(req, "/value-long")) r = kv(TE_CALL_KV_SET, "k", 1, big, MiB + 1);
    else if (path_is(req, "/value-max")) r = kv(TE_CALL_KV_SET, "k", 1, big, MiB);
    else if (path_is(req, "/value-40m")) r = kv(TE_CALL_KV_SET, "k", 1, big, sizeof big);
    else if (path_is(req, "/value-huge")) r = kv(TE_CALL_KV_SET, "k", 1, big, UINT64_MAX);
    else if (path_is(req, "/get-bad-buf")) r = kv(TE_CALL_KV_GET, "k", 1, BOGUS, 100);
    else if (path_is(req, "/get-huge-cap")) r = kv(TE_CALL_KV_GET, "k", 1, small, (uint64_t)1 << 40);
    else if (path_is(req, "/delete-junk")) r = kv(TE_CALL_KV_DELETE, "k", 1, BOGUS, UINT64_MAX);
    else if (path_is(req, "/log-huge")) r = te__hypercall(TE_CALL_LOG, (long)big, (long)1 << 63);
    else if (path_is(req, "/log-many")) {
        for (int i = 0; i < 2000; i++) r |= te__hypercall(TE_CALL_LOG, (long)big, 4096);
    } else if (path_is(req, "/stderr-many")) {
        static char lines[64 * 1024];
        for (size_t i = 0; i < sizeof lines; i += 2) { lines[i] = 'x'; lines[i + 1] = '\n'; }
        r = write(2, lines, sizeof lines);
    } else {
        te_respond_str(200, "text/plain", "fine\n");
        return;
    }
    int n = snprintf(body, sizeof body, "r=%ld\n", r);
    te_respond(200, "text/plain", body, (size_t)n);
}

int main(void) {
    memset(big, 'a', sizeof big);
    te_on_request(on_request);
    wait_for_requests();
}
