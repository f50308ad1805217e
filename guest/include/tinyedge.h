/*
 * tinyedge.h — the guest SDK for tinyedge request VMs. One header, no library: C99 or C++.
 *
 * A program registers a handler, initialises whatever it likes in main(), then calls
 * wait_for_requests(). The host freezes the program there (the snapshot) and runs every request
 * in an instance that is reset to that snapshot afterwards: nothing a request writes survives it.
 *
 *     #include <tinyedge.h>
 *     static void hello(const te_request *req) {
 *         te_respond_str(200, "text/plain", "hello, world\n");
 *         te_cache(60, 10, 0);                   // cache 60 s, serve stale for 10 s more
 *     }
 *     int main(void) { te_on_request(hello); wait_for_requests(); }
 *
 * The ABI (for bindings in other languages) is in docs/guest-abi.md: hypercalls are `out` to
 * port 0x80 with the call number in EAX and arguments in RDI, RSI, RDX; the result is in RAX.
 * Request data is in guest memory when the handler starts; the response is read from guest
 * memory when the handler returns, so a request costs one exit.
 */
#ifndef TINYEDGE_H
#define TINYEDGE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TE_ABI_VERSION 1

/* Hypercall numbers. */
#define TE_CALL_WAIT      1  /* rdi = response (or 0 the first time) -> rax = next request */
#define TE_CALL_LOG       2  /* rdi = text, rsi = length -> 0 */
#define TE_CALL_FETCH     3  /* rdi = te_fetch -> HTTP status, or -errno */
#define TE_CALL_KV_GET    4  /* rdi = te_kv -> value length (may exceed the buffer), or -ENOENT */
#define TE_CALL_KV_SET    5  /* rdi = te_kv -> 0, or -ENOSPC over the tenant's quota */
#define TE_CALL_KV_DELETE 6  /* rdi = te_kv -> 0, or -ENOENT */

/* Why the program is called (te_request.phase). */
#define TE_PHASE_GENERATE 0  /* produce the response (the backend of a route) */
#define TE_PHASE_RECV     1  /* before cache lookup: may rewrite, pass, or answer (synthetic) */
#define TE_PHASE_DELIVER  2  /* before delivery: may set response headers */

typedef struct { const char *ptr; uint64_t len; } te_str;
typedef struct { te_str name; te_str value; } te_header;

/* Written by the host before each request (read-only for the program). */
typedef struct {
    uint32_t abi_version;
    uint32_t header_count;
    te_str method;
    te_str url;        /* path and query, as received */
    te_str path;
    te_str query;      /* without the '?' */
    te_str body;
    const te_header *headers;
    uint8_t random[32]; /* fresh entropy for this request */
    uint32_t phase;     /* TE_PHASE_* */
    uint32_t resp_status;        /* deliver phase: the response about to be delivered */
    uint32_t resp_header_count;
    uint32_t reserved;
    const te_header *resp_headers;
} te_request;

#define TE_RESPONDED   1u  /* a response (generate), or a synthetic answer (recv) */
#define TE_UNCACHEABLE 2u
#define TE_PASS        4u  /* recv: send to the backend, bypassing the cache */
#define TE_REWRITE_URL 8u  /* recv: look up / fetch te_response.url instead */

/* Filled by the program (through the functions below) and read by the host after the handler. */
typedef struct {
    uint32_t status;
    uint32_t flags;
    uint32_t header_count;
    uint32_t reserved;
    const te_header *headers;
    te_str body;
    int64_t ttl_ms;    /* -1: not set (the host's policy decides) */
    int64_t grace_ms;
    int64_t keep_ms;
    te_str tags;       /* space-separated cache tags */
    te_str url;        /* recv: the new URL with TE_REWRITE_URL */
} te_response;

/* A sub-request to one of the tenant's origins (te_fetch_origin). */
typedef struct {
    te_str origin;      /* origin name from the tenant's config ("" = default) */
    te_str method;
    te_str url;         /* path and query */
    const te_header *headers;
    uint64_t header_count;
    te_str body;
    char *resp_body;    /* buffer for the response body */
    uint64_t resp_body_cap;
    uint64_t resp_body_len;   /* written by the host: the full length (may exceed the cap) */
    char *resp_headers;       /* buffer for response headers as "name: value\n" lines */
    uint64_t resp_headers_cap;
    uint64_t resp_headers_len;
} te_fetch;

/* A key-value operation on the tenant's store (survives resets and requests). */
typedef struct {
    te_str key;
    char *value;        /* get: buffer; set: the value */
    uint64_t value_cap; /* get: buffer size; set: value length */
} te_kv;

typedef void (*te_handler)(const te_request *req);

#ifndef TE_MAX_RESPONSE_HEADERS
#define TE_MAX_RESPONSE_HEADERS 64
#endif

/* SDK state lives in these statics: reset with everything else after each request. */
static te_handler te__handler;
static te_response te__response;
static te_header te__headers[TE_MAX_RESPONSE_HEADERS];

static inline long te__hypercall(long call, long a, long b) {
    long ret;
    __asm__ volatile("outb %%al, $0x80" : "=a"(ret) : "a"(call), "D"(a), "S"(b) : "memory");
    return ret;
}

/* --- initialisation --------------------------------------------------------------------------- */

static inline void te_on_request(te_handler handler) { te__handler = handler; }

static void te__reset_response(void) {
    memset(&te__response, 0, sizeof te__response);
    te__response.headers = te__headers;
    te__response.ttl_ms = te__response.grace_ms = te__response.keep_ms = -1;
}

/* Ends initialisation (the snapshot is taken here) and serves requests forever. */
static void wait_for_requests(void) __attribute__((noreturn, unused));
static void wait_for_requests(void) {
    const te_request *req = (const te_request *)te__hypercall(TE_CALL_WAIT, 0, 0);
    for (;;) {
        unsigned seed;
        te__reset_response();
        memcpy(&seed, req->random, sizeof seed);
        srand(seed); /* never replay the snapshot's PRNG state */
        if (te__handler) te__handler(req);
        req = (const te_request *)te__hypercall(TE_CALL_WAIT, (long)&te__response, 0);
    }
}

/* --- reading the request ---------------------------------------------------------------------- */

/* Case-insensitive lookup of a request header; returns NULL (and *len = 0) when absent. */
static inline const char *te_request_header(const te_request *req, const char *name, size_t *len) {
    size_t n = strlen(name);
    for (uint32_t i = 0; i < req->header_count; i++) {
        const te_header *h = &req->headers[i];
        if (h->name.len != n) continue;
        size_t j = 0;
        for (; j < n; j++) {
            char a = h->name.ptr[j], b = name[j];
            if (a >= 'A' && a <= 'Z') a = (char)(a + 32);
            if (b >= 'A' && b <= 'Z') b = (char)(b + 32);
            if (a != b) break;
        }
        if (j == n) { if (len) *len = (size_t)h->value.len; return h->value.ptr; }
    }
    if (len) *len = 0;
    return NULL;
}

/* --- responding ------------------------------------------------------------------------------- */

static inline void te_status(int status) { te__response.status = (uint32_t)status; te__response.flags |= TE_RESPONDED; }

/* Adds a response header; the strings must stay valid until the handler returns. Returns -1 when full. */
static inline int te_header_add(const char *name, const char *value) {
    if (te__response.header_count >= TE_MAX_RESPONSE_HEADERS) return -1;
    te_header *h = &te__headers[te__response.header_count++];
    h->name.ptr = name; h->name.len = strlen(name);
    h->value.ptr = value; h->value.len = strlen(value);
    return 0;
}

/* Sets the body; the bytes must stay valid until the handler returns. */
static inline void te_body(const void *data, size_t len) { te__response.body.ptr = (const char *)data; te__response.body.len = len; }

static inline void te_respond(int status, const char *content_type, const void *body, size_t len) {
    te_status(status);
    if (content_type) te_header_add("Content-Type", content_type);
    te_body(body, len);
}

static inline void te_respond_str(int status, const char *content_type, const char *body) {
    te_respond(status, content_type, body, strlen(body));
}

/* Cache policy of this response, in seconds (fractions allowed); negative leaves one unset. */
static inline void te_cache(double ttl, double grace, double keep) {
    te__response.ttl_ms = ttl < 0 ? -1 : (int64_t)(ttl * 1000);
    te__response.grace_ms = grace < 0 ? -1 : (int64_t)(grace * 1000);
    te__response.keep_ms = keep < 0 ? -1 : (int64_t)(keep * 1000);
}

/* Space-separated tags for tag invalidation (Surrogate-Key style). */
static inline void te_cache_tags(const char *tags) { te__response.tags.ptr = tags; te__response.tags.len = strlen(tags); }

static inline void te_uncacheable(void) { te__response.flags |= TE_UNCACHEABLE; }

/* --- hooks (recv / deliver phases) ------------------------------------------------------------ */

/* recv: bypass the cache for this request. */
static inline void te_recv_pass(void) { te__response.flags |= TE_PASS; }

/* recv: continue with another URL (path and query); the string must stay valid until return. */
static inline void te_recv_rewrite_url(const char *url) {
    te__response.flags |= TE_REWRITE_URL;
    te__response.url.ptr = url;
    te__response.url.len = strlen(url);
}

/* recv: set (replace) a request header; deliver: set (replace) a response header.
 * An empty value removes the header. */
static inline int te_set_header(const char *name, const char *value) { return te_header_add(name, value); }

/* --- host calls: origins and the key-value store ---------------------------------------------- */

/* Fetches `url` from the tenant's origin `origin` (NULL = default) with GET. The body goes into
 * `buf` (at most `cap` bytes); returns the HTTP status (and *len = full body length), or -errno. */
static inline int te_fetch_origin(const char *origin, const char *url, char *buf, size_t cap, size_t *len) {
    te_fetch f;
    memset(&f, 0, sizeof f);
    f.origin.ptr = origin ? origin : ""; f.origin.len = origin ? strlen(origin) : 0;
    f.method.ptr = "GET"; f.method.len = 3;
    f.url.ptr = url; f.url.len = strlen(url);
    f.resp_body = buf; f.resp_body_cap = cap;
    long status = te__hypercall(TE_CALL_FETCH, (long)&f, 0);
    if (len) *len = (size_t)f.resp_body_len;
    return (int)status;
}

/* Full control: fill a te_fetch yourself. Returns the HTTP status, or -errno: -EFAULT for a bad
 * pointer, -EMSGSIZE (-ENAMETOOLONG for the origin name) for a size over its bound (the Limits
 * table of docs/guest-abi.md), -EIO when the origin fails or answers more than the host reads. */
static inline int te_fetch_call(te_fetch *f) { return (int)te__hypercall(TE_CALL_FETCH, (long)f, 0); }

/* Reads `key` into buf; returns the value's full length (which may exceed cap), or -1 when absent. */
static inline long te_kv_get(const char *key, char *buf, size_t cap) {
    te_kv kv = { { key, strlen(key) }, buf, cap };
    long n = te__hypercall(TE_CALL_KV_GET, (long)&kv, 0);
    return n < 0 ? -1 : n;
}

/* Stores `len` bytes under `key`; returns 0, or -1 over the tenant's quota, for a key over 1024
 * bytes or a value over 1 MiB (docs/guest-abi.md, Limits). */
static inline int te_kv_set(const char *key, const void *value, size_t len) {
    te_kv kv = { { key, strlen(key) }, (char *)value, len };
    return te__hypercall(TE_CALL_KV_SET, (long)&kv, 0) < 0 ? -1 : 0;
}

static inline int te_kv_delete(const char *key) {
    te_kv kv = { { key, strlen(key) }, NULL, 0 };
    return te__hypercall(TE_CALL_KV_DELETE, (long)&kv, 0) < 0 ? -1 : 0;
}

/* --- logging ---------------------------------------------------------------------------------- */

static inline void te_log(const char *text) { te__hypercall(TE_CALL_LOG, (long)text, (long)strlen(text)); }

static inline void te_logf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void te_logf(const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0) te__hypercall(TE_CALL_LOG, (long)line, (long)(n < (int)sizeof line ? n : (int)sizeof line - 1));
}

#ifdef __cplusplus
}
#endif
#endif /* TINYEDGE_H */
