/* SDK program that hands KV_INCR and KV_CAS hostile pointers, sizes and flags, by path; each
 * answers "r=<result>" with status 200 (the host call's return value as is):
 *   /incr-struct-bad     KV_INCR whose te_kv lies outside guest memory
 *   /incr-value-bad      KV_INCR whose int64_t lies outside guest memory
 *   /incr-readonly       KV_INCR whose int64_t is in read-only memory (.rodata)
 *   /incr-cap-0, /incr-cap-4, /incr-cap-16, /incr-cap-huge   value_cap other than 8
 *   /incr-key-huge       KV_INCR with a key length of 2^64 - 1
 *   /incr-ok             KV_INCR of "n" by 1, which must work ("r=0 value=...")
 *   /cas-struct-bad      KV_CAS whose te_kv_cas lies outside guest memory
 *   /cas-expected-bad    KV_CAS whose expected value lies outside guest memory
 *   /cas-value-bad       KV_CAS whose new value lies outside guest memory
 *   /cas-expected-huge   KV_CAS with an expected length of 2^64 - 1
 *   /cas-value-huge      KV_CAS with a value length of 2^64 - 1
 *   /cas-value-long      KV_CAS of 1 MiB + 1 bytes;   /cas-value-max: exactly 1 MiB
 *   /cas-value-40m       KV_CAS of a 40 MiB value
 *   /cas-flags-2, /cas-flags-high   unknown flag bits
 *   /cas-absent-junk     TE_KV_CAS_ABSENT with a junk expected pointer and length (not read)
 * Anything else answers "fine". */
#include <tinyedge.h>

#define BOGUS ((char *)0xdead0000)
#define MiB (1024 * 1024)

static char big[40 * MiB];
static char body[128];
static const int64_t readonly_delta = 1;

static int path_is(const te_request *req, const char *p) {
    return req->path.len == strlen(p) && memcmp(req->path.ptr, p, req->path.len) == 0;
}

static long incr(const char *key, uint64_t key_len, char *value, uint64_t cap) {
    te_kv k = { { key, key_len }, value, cap };
    return te__hypercall(TE_CALL_KV_INCR, (long)&k, 0);
}

static long cas(const char *expected, uint64_t expected_len, const char *value, uint64_t len, uint64_t flags) {
    te_kv_cas c = { { "k", 1 }, { expected, expected_len }, { value, len }, flags };
    return te__hypercall(TE_CALL_KV_CAS, (long)&c, 0);
}

static void on_request(const te_request *req) {
    long r = 0;
    int64_t v = 1;
    if (path_is(req, "/incr-struct-bad")) r = te__hypercall(TE_CALL_KV_INCR, (long)BOGUS, 0);
    else if (path_is(req, "/incr-value-bad")) r = incr("n", 1, BOGUS, 8);
    else if (path_is(req, "/incr-readonly")) r = incr("n", 1, (char *)&readonly_delta, 8);
    else if (path_is(req, "/incr-cap-0")) r = incr("n", 1, (char *)&v, 0);
    else if (path_is(req, "/incr-cap-4")) r = incr("n", 1, (char *)&v, 4);
    else if (path_is(req, "/incr-cap-16")) r = incr("n", 1, (char *)&v, 16);
    else if (path_is(req, "/incr-cap-huge")) r = incr("n", 1, (char *)&v, UINT64_MAX);
    else if (path_is(req, "/incr-key-huge")) r = incr(big, UINT64_MAX, (char *)&v, 8);
    else if (path_is(req, "/incr-ok")) {
        r = incr("n", 1, (char *)&v, 8);
        int n = snprintf(body, sizeof body, "r=%ld value=%lld\n", r, (long long)v);
        te_respond(200, "text/plain", body, (size_t)n);
        return;
    }
    else if (path_is(req, "/cas-struct-bad")) r = te__hypercall(TE_CALL_KV_CAS, (long)BOGUS, 0);
    else if (path_is(req, "/cas-expected-bad")) r = cas(BOGUS, 10, "v", 1, 0);
    else if (path_is(req, "/cas-value-bad")) r = cas("", 0, BOGUS, 10, 0);
    else if (path_is(req, "/cas-expected-huge")) r = cas(big, UINT64_MAX, "v", 1, 0);
    else if (path_is(req, "/cas-value-huge")) r = cas("", 0, big, UINT64_MAX, TE_KV_CAS_ABSENT);
    else if (path_is(req, "/cas-value-long")) r = cas("", 0, big, MiB + 1, TE_KV_CAS_ABSENT);
    else if (path_is(req, "/cas-value-max")) r = cas("", 0, big, MiB, TE_KV_CAS_ABSENT);
    else if (path_is(req, "/cas-value-40m")) r = cas("", 0, big, sizeof big, TE_KV_CAS_ABSENT);
    else if (path_is(req, "/cas-flags-2")) r = cas("", 0, "v", 1, 2);
    else if (path_is(req, "/cas-flags-high")) r = cas("", 0, "v", 1, (uint64_t)1 << 63 | TE_KV_CAS_ABSENT);
    else if (path_is(req, "/cas-absent-junk")) r = cas(BOGUS, UINT64_MAX, "v", 1, TE_KV_CAS_ABSENT);
    else {
        te_respond_str(200, "text/plain", "fine\n");
        return;
    }
    int n = snprintf(body, sizeof body, "r=%ld\n", r);
    te_respond(200, "text/plain", body, (size_t)n);
}

int main(void) {
    memset(big, 'a', sizeof big);
    te_on_request(on_request);
    te_wait_for_requests();
}
