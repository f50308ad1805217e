/*
 * tinyedge.h — the guest SDK for tinyedge request VMs. One header, no library: C99 or C++
 * (tinyedge.hpp wraps it for C++17). Any number of a program's files may include it: the SDK's
 * state is defined weakly, so the linker keeps one copy for the whole program.
 *
 * A program registers a handler, initialises whatever it likes in main(), then calls
 * te_wait_for_requests(). The host freezes the program there (the snapshot) and runs every request
 * in an instance that is reset to that snapshot afterwards: nothing a request writes survives it
 * (unless the program's lifecycle is persistent: then its state carries over, see te_reset_after()).
 *
 *     #include <tinyedge.h>
 *     static void hello(const te_request *req) {
 *         te_respond_str(200, "text/plain", "hello, world\n");
 *         te_cache(60, 10, 0);                   // cache 60 s, serve stale for 10 s more
 *     }
 *     int main(void) { te_on_request(hello); te_wait_for_requests(); }
 *
 * The ABI (for bindings in other languages) is in docs/guest-abi.md: hypercalls are `out` to
 * port 0x80 with the call number in EAX and arguments in RDI, RSI, RDX; the result is in RAX.
 * Request data is in guest memory when the handler starts; the response is read from guest
 * memory when the handler returns, so a request costs one exit.
 */
#ifndef TINYEDGE_H
#define TINYEDGE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The binary interface this header speaks, passed to the host by the first WAIT. It changes only
 * when a change would make a built program wrong (docs/guest-abi.md, "Versions"). */
#define TE_ABI_VERSION 2

/* Hypercall numbers. */
#define TE_CALL_WAIT      1  /* rdi = the te_batch answered (or 0 the first time; then rsi = TE_ABI_VERSION) -> rax = next te_batch */
#define TE_CALL_LOG       2  /* rdi = text, rsi = length -> 0 */
#define TE_CALL_FETCH     3  /* rdi = te_fetch -> HTTP status, or -errno */
#define TE_CALL_KV_GET    4  /* rdi = te_kv -> value length (may exceed the buffer), or -errno */
#define TE_CALL_KV_SET    5  /* rdi = te_kv -> 0, or -errno (-ENOSPC over the tenant's quota) */
#define TE_CALL_KV_DELETE 6  /* rdi = te_kv -> 0, or -errno (-ENOENT when absent) */
#define TE_CALL_KV_INCR   7  /* rdi = te_kv, value -> int64_t delta in, new value out -> 0, or -errno */
#define TE_CALL_KV_CAS    8  /* rdi = te_kv_cas -> 1 stored, 0 not (another value), or -errno */

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
    uint32_t flags;     /* TE_REQUEST_* */
    const te_header *resp_headers;
} te_request;

/* te_request.flags. A synthetic request the host makes to check a program it has just loaded
 * (before `serve` routes anything to a new version): not a client's; answer it as any other. */
#define TE_REQUEST_WARMUP 1u
/* With TE_REQUEST_WARMUP: one of the warm-up requests (config `warmup`) the host sends after main()
 * reaches te_wait_for_requests() and before it takes the snapshot, so what they leave in memory is
 * in every instance. Host calls answer -ENOSYS then, as during main(). */
#define TE_REQUEST_PRESNAPSHOT 2u
/* Live update (ABI version 2, persistent programs; the SDK's loop answers these itself, the
 * handler never sees them): the host asks for the state to hand this program's next version
 * (te_on_live_update), or hands this version the state its previous one gave (te_on_live_restore,
 * before the snapshot: every instance starts with it). */
#define TE_REQUEST_LIVE_UPDATE 4u
#define TE_REQUEST_LIVE_RESTORE 8u

#define TE_RESPONDED   1u  /* a response (generate), or a synthetic answer (recv) */
#define TE_UNCACHEABLE 2u
#define TE_PASS        4u  /* recv: send to the backend, bypassing the cache */
#define TE_REWRITE_URL 8u  /* recv: look up / fetch te_response.url instead */
#define TE_RESET_AFTER 16u /* persistent programs: reset the instance to its snapshot after this response */

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

/* What WAIT returns (ABI version 2): `count` requests to answer one after another, each into its
 * own response slot, with one WAIT for them all. The SDK's loop does this; a program need not. */
typedef struct {
    uint32_t count;               /* written by the host: requests in this batch (at least 1) */
    uint32_t current;             /* written by the SDK: the request whose handler runs now */
    uint32_t answered;            /* written by the SDK before its WAIT: slots 0..answered-1 hold answers */
    uint32_t reserved;
    const te_request *const *requests;  /* the host's: `count` requests */
    te_response *responses;             /* the host's: `count` zeroed response slots */
} te_batch;

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

/* A key-value compare-and-set (TE_CALL_KV_CAS): `value` is stored only if the key holds exactly
 * `expected`, or with TE_KV_CAS_ABSENT only if the key is absent (`expected` is then not read). */
typedef struct {
    te_str key;
    te_str expected;
    te_str value;
    uint64_t flags;     /* TE_KV_CAS_*; other bits: -EINVAL */
} te_kv_cas;

#define TE_KV_CAS_ABSENT 1u

/* Every offset the host reads or writes, asserted here and named alike in the host
 * (src/sandbox/abi-layout.ts): a layout the host does not share fails to compile. */
#ifdef __cplusplus
#define TE__ASSERT(cond, what) static_assert(cond, what)
#else
#define TE__ASSERT(cond, what) _Static_assert(cond, what)
#endif
#define TE__FIELD(type, field, offset) TE__ASSERT(offsetof(type, field) == (offset), #type "." #field " is at offset " #offset " in the ABI")
#define TE__SIZE(type, size) TE__ASSERT(sizeof(type) == (size), "sizeof(" #type ") is " #size " in the ABI")

TE__FIELD(te_str, ptr, 0);
TE__FIELD(te_str, len, 8);
TE__SIZE(te_str, 16);
TE__FIELD(te_header, name, 0);
TE__FIELD(te_header, value, 16);
TE__SIZE(te_header, 32);
TE__FIELD(te_request, abi_version, 0);
TE__FIELD(te_request, header_count, 4);
TE__FIELD(te_request, method, 8);
TE__FIELD(te_request, url, 24);
TE__FIELD(te_request, path, 40);
TE__FIELD(te_request, query, 56);
TE__FIELD(te_request, body, 72);
TE__FIELD(te_request, headers, 88);
TE__FIELD(te_request, random, 96);
TE__FIELD(te_request, phase, 128);
TE__FIELD(te_request, resp_status, 132);
TE__FIELD(te_request, resp_header_count, 136);
TE__FIELD(te_request, flags, 140);
TE__FIELD(te_request, resp_headers, 144);
TE__SIZE(te_request, 152);
TE__FIELD(te_response, status, 0);
TE__FIELD(te_response, flags, 4);
TE__FIELD(te_response, header_count, 8);
TE__FIELD(te_response, headers, 16);
TE__FIELD(te_response, body, 24);
TE__FIELD(te_response, ttl_ms, 40);
TE__FIELD(te_response, grace_ms, 48);
TE__FIELD(te_response, keep_ms, 56);
TE__FIELD(te_response, tags, 64);
TE__FIELD(te_response, url, 80);
TE__SIZE(te_response, 96);
TE__FIELD(te_batch, count, 0);
TE__FIELD(te_batch, current, 4);
TE__FIELD(te_batch, answered, 8);
TE__FIELD(te_batch, reserved, 12);
TE__FIELD(te_batch, requests, 16);
TE__FIELD(te_batch, responses, 24);
TE__SIZE(te_batch, 32);
TE__FIELD(te_fetch, origin, 0);
TE__FIELD(te_fetch, method, 16);
TE__FIELD(te_fetch, url, 32);
TE__FIELD(te_fetch, headers, 48);
TE__FIELD(te_fetch, header_count, 56);
TE__FIELD(te_fetch, body, 64);
TE__FIELD(te_fetch, resp_body, 80);
TE__FIELD(te_fetch, resp_body_cap, 88);
TE__FIELD(te_fetch, resp_body_len, 96);
TE__FIELD(te_fetch, resp_headers, 104);
TE__FIELD(te_fetch, resp_headers_cap, 112);
TE__FIELD(te_fetch, resp_headers_len, 120);
TE__SIZE(te_fetch, 128);
TE__FIELD(te_kv, key, 0);
TE__FIELD(te_kv, value, 16);
TE__FIELD(te_kv, value_cap, 24);
TE__SIZE(te_kv, 32);
TE__FIELD(te_kv_cas, key, 0);
TE__FIELD(te_kv_cas, expected, 16);
TE__FIELD(te_kv_cas, value, 32);
TE__FIELD(te_kv_cas, flags, 48);
TE__SIZE(te_kv_cas, 56);

typedef void (*te_handler)(const te_request *req);
/* Live update: returns the state to hand the next version (its bytes in *data, valid until the
 * next request), or 0 for none. */
typedef size_t (*te_live_update_fn)(const void **data);
/* Live update: takes the state the previous version handed over. */
typedef void (*te_live_restore_fn)(const void *data, size_t len);

/* Response headers a handler may add: the host's bound (docs/guest-abi.md, "Limits"). */
#define TE_MAX_RESPONSE_HEADERS 256

/* The SDK's state, reset with everything else after each request. Weak definitions: each file
 * that includes this header defines them, and the linker keeps one, so a handler registered in
 * one file and the loop started in another share it. */
__attribute__((weak)) te_handler te__handler;
__attribute__((weak)) te_response te__response;
__attribute__((weak)) te_header te__headers[TE_MAX_RESPONSE_HEADERS];
__attribute__((weak)) te_live_update_fn te__live_update;
__attribute__((weak)) te_live_restore_fn te__live_restore;

/* Where the loop keeps a batch's answers while the next handlers run (their buffers may be
 * reused): a response that no longer fits ends the batch there, and the host sends the rest again
 * in the next one. Untouched pages cost nothing. */
#define TE_BATCH_ARENA_BYTES (256 * 1024)
__attribute__((weak)) char te__arena[TE_BATCH_ARENA_BYTES];

static inline long te__hypercall(long call, long a, long b) {
    long ret;
    __asm__ volatile("outb %%al, $0x80" : "=a"(ret) : "a"(call), "D"(a), "S"(b) : "memory");
    return ret;
}

/* --- initialisation --------------------------------------------------------------------------- */

static inline void te_on_request(te_handler handler) { te__handler = handler; }

/* A persistent program's state across a live upload, as TinyKVM's live update: when a new version
 * of the program replaces this one, the host calls `fn` in one instance of this version and hands
 * the bytes it returns to the new version's te_on_live_restore callback, before the new version's
 * snapshot (so every one of its instances starts with them). Register both in main(). */
static inline void te_on_live_update(te_live_update_fn fn) { te__live_update = fn; }
static inline void te_on_live_restore(te_live_restore_fn fn) { te__live_restore = fn; }

static inline void te__reset_response(void) {
    memset(&te__response, 0, sizeof te__response);
    te__response.headers = te__headers;
    te__response.ttl_ms = te__response.grace_ms = te__response.keep_ms = -1;
}

static inline const char *te__stash(char **at, te_str s) {
    if (s.len == 0) return s.ptr;
    memcpy(*at, s.ptr, (size_t)s.len);
    *at += s.len;
    return *at - s.len;
}

/* Copies what response `r` points to into the arena, after the `*used` bytes already there, and
 * points `r` at the copies; 0 (nothing changed) when it does not fit. */
static inline int te__keep(te_response *r, size_t *used) {
    size_t start = (*used + 7) & ~(size_t)7, n = r->header_count;
    if (n > TE_MAX_RESPONSE_HEADERS || start > sizeof te__arena) return 0;
    size_t room = sizeof te__arena - start, need = n * sizeof(te_header);
    te_str strs[3] = { r->body, r->tags, r->url };
    for (int i = 0; i < 3; i++) { if (strs[i].len > room) return 0; need += (size_t)strs[i].len; }
    for (size_t i = 0; i < n; i++) {
        if (r->headers[i].name.len > room || r->headers[i].value.len > room) return 0;
        need += (size_t)(r->headers[i].name.len + r->headers[i].value.len);
    }
    if (need > room) return 0;
    te_header *h = (te_header *)(te__arena + start);
    char *at = (char *)(h + n);
    for (size_t i = 0; i < n; i++) {
        h[i].name.ptr = te__stash(&at, r->headers[i].name); h[i].name.len = r->headers[i].name.len;
        h[i].value.ptr = te__stash(&at, r->headers[i].value); h[i].value.len = r->headers[i].value.len;
    }
    r->headers = h;
    r->body.ptr = te__stash(&at, r->body);
    r->tags.ptr = te__stash(&at, r->tags);
    r->url.ptr = te__stash(&at, r->url);
    *used = (size_t)(at - te__arena);
    return 1;
}

/* Answers the host's live-update requests: the state to hand over (200, or 204 for none), or the
 * state handed over, given to the restore callback (204). */
static inline void te__live(const te_request *req) {
    te__response.status = 204;
    te__response.flags |= TE_RESPONDED;
    if ((req->flags & TE_REQUEST_LIVE_UPDATE) && te__live_update) {
        const void *data = NULL;
        size_t n = te__live_update(&data);
        if (data && n > 0) { te__response.status = 200; te__response.body.ptr = (const char *)data; te__response.body.len = n; }
    } else if ((req->flags & TE_REQUEST_LIVE_RESTORE) && te__live_restore) {
        te__live_restore(req->body.ptr, (size_t)req->body.len);
    }
}

/* Ends initialisation (the snapshot is taken here) and serves requests forever: each WAIT hands
 * over a batch, whose requests the handler answers one after another, each response in its slot;
 * one WAIT returns them all. The batch ends early after a response that asks for a reset, or one
 * whose bytes no longer fit the arena: the host sends the requests not answered again. */
static void te_wait_for_requests(void) __attribute__((noreturn, unused));
static void te_wait_for_requests(void) {
    /* What the program printed goes to the host's log now: a buffer left in memory would be lost
     * (snapshot) or dropped by the reset after the request. */
    fflush(stdout);
    te_batch *b = (te_batch *)te__hypercall(TE_CALL_WAIT, 0, TE_ABI_VERSION);
    for (;;) {
        uint32_t i = 0, n = b->count;
        size_t used = 0;
        for (;;) {
            const te_request *req = b->requests[i];
            unsigned seed;
            *(volatile uint32_t *)&b->current = i; /* the host times each handler from here */
            te__reset_response();
            memcpy(&seed, req->random, sizeof seed);
            srand(seed); /* never replay the snapshot's PRNG state */
            if (req->flags & (TE_REQUEST_LIVE_UPDATE | TE_REQUEST_LIVE_RESTORE)) te__live(req);
            else if (te__handler) te__handler(req);
            fflush(stdout);
            te_response *slot = &b->responses[i++];
            *slot = te__response;
            if (i >= n || (slot->flags & TE_RESET_AFTER) || !te__keep(slot, &used)) break;
        }
        b->answered = i;
        b = (te_batch *)te__hypercall(TE_CALL_WAIT, (long)b, 0);
    }
}

/* The SDK's first name for te_wait_for_requests(), kept for the programs written with it. */
static void wait_for_requests(void) __attribute__((noreturn, unused));
static void wait_for_requests(void) { te_wait_for_requests(); }

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

/* True for the host's warm-up requests (TE_REQUEST_WARMUP), false for a client's. */
static inline int te_is_warmup(const te_request *req) { return (req->flags & TE_REQUEST_WARMUP) != 0; }

/* True for a warm-up request before the snapshot (TE_REQUEST_PRESNAPSHOT). */
static inline int te_is_presnapshot(const te_request *req) { return (req->flags & TE_REQUEST_PRESNAPSHOT) != 0; }

/* How te_percent_decode() reads its input. */
#define TE_DECODE_PLUS      1u  /* '+' is a space (form encoding: query strings) */
#define TE_DECODE_ALLOW_NUL 2u  /* let %00 through: the result is then bytes, not a C string */

static inline int te__hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes the %XX escapes of src[0, len) into dst, NUL-terminated (dst may be src: decoding never
 * lengthens). Returns the decoded length; -EINVAL for a '%' without two hex digits after it, or a
 * NUL byte (escaped or not) without TE_DECODE_ALLOW_NUL; -ENOSPC when dst's `cap` bytes cannot hold
 * the result and its NUL. On an error dst holds "" (when cap > 0). */
static inline long te_percent_decode(const char *src, size_t len, char *dst, size_t cap, unsigned flags) {
    size_t n = 0;
    long err = 0;
    for (size_t i = 0; i < len && err == 0; i++) {
        char c = src[i];
        if (c == '%') {
            int hi = len - i >= 3 ? te__hex(src[i + 1]) : -1;
            int lo = hi >= 0 ? te__hex(src[i + 2]) : -1;
            if (lo < 0) { err = -EINVAL; break; }
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && (flags & TE_DECODE_PLUS)) {
            c = ' ';
        }
        if (c == '\0' && !(flags & TE_DECODE_ALLOW_NUL)) err = -EINVAL;
        else if (n + 1 >= cap) err = -ENOSPC;
        else dst[n++] = c;
    }
    if (err == 0 && cap == 0) err = -ENOSPC;
    if (err != 0) {
        if (cap > 0) dst[0] = '\0';
        return err;
    }
    dst[n] = '\0';
    return (long)n;
}

/* True when s[0, len), form-decoded, is exactly name[0, nlen) (a bad escape never matches). */
static inline int te__decoded_equals(const char *s, size_t len, const char *name, size_t nlen) {
    size_t j = 0;
    for (size_t i = 0; i < len; i++, j++) {
        char c = s[i];
        if (c == '%') {
            int hi = len - i >= 3 ? te__hex(s[i + 1]) : -1;
            int lo = hi >= 0 ? te__hex(s[i + 2]) : -1;
            if (lo < 0) return 0;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (j >= nlen || c != name[j]) return 0;
    }
    return j == nlen;
}

/* Finds the query parameter `name` (name=value pairs split on '&', form encoding: escapes and '+'
 * decoded in names and values) and decodes its value into buf, NUL-terminated. Returns the
 * value's length; -ENOENT when absent; -EINVAL for a bad escape or a NUL in the value; -ENOSPC
 * when buf's `cap` bytes cannot hold it and its NUL. The first of repeated parameters counts; a
 * name without '=' has the empty value. */
static inline long te_query_param(const te_request *req, const char *name, char *buf, size_t cap) {
    const char *q = req->query.ptr;
    size_t len = (size_t)req->query.len, nlen = strlen(name);
    for (size_t i = 0; i <= len; ) {
        size_t end = i, eq;
        while (end < len && q[end] != '&') end++;
        for (eq = i; eq < end && q[eq] != '='; eq++) {}
        if (end > i && te__decoded_equals(q + i, eq - i, name, nlen)) {
            size_t value = eq < end ? eq + 1 : end;
            return te_percent_decode(q + value, end - value, buf, cap, TE_DECODE_PLUS);
        }
        i = end + 1;
    }
    if (cap > 0) buf[0] = '\0';
    return -ENOENT;
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

/* A program whose lifecycle is persistent keeps its memory from one request to the next (in one
 * instance). This asks the host to reset the instance to its snapshot once the current response
 * is delivered: the next request starts afresh. Ephemeral programs are reset after every request
 * anyway. Call it from the handler (it is a flag of this response). */
static inline void te_reset_after(void) { te__response.flags |= TE_RESET_AFTER; }

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

/* The key-value calls return -errno as the host answers it: -EINVAL for an empty key, -E2BIG for
 * a key over 1024 bytes, -EFAULT for a buffer outside the program's memory, -EIO when the store
 * failed, -ENOSYS where there is no store (docs/guest-abi.md, "Hypercalls" and "Limits"). */

/* Reads `key` into buf; returns the value's full length (which may exceed cap: only cap bytes are
 * written), -ENOENT when absent, or another -errno. */
static inline long te_kv_get(const char *key, char *buf, size_t cap) {
    te_kv kv = { { key, strlen(key) }, buf, cap };
    return te__hypercall(TE_CALL_KV_GET, (long)&kv, 0);
}

/* Stores `len` bytes under `key`; returns 0, -ENOSPC over the tenant's quota, -E2BIG for a value
 * over 1 MiB, or another -errno. */
static inline int te_kv_set(const char *key, const void *value, size_t len) {
    te_kv kv = { { key, strlen(key) }, (char *)value, len };
    return (int)te__hypercall(TE_CALL_KV_SET, (long)&kv, 0);
}

/* Deletes `key`; returns 0, -ENOENT when it was absent, or another -errno. */
static inline int te_kv_delete(const char *key) {
    te_kv kv = { { key, strlen(key) }, NULL, 0 };
    return (int)te__hypercall(TE_CALL_KV_DELETE, (long)&kv, 0);
}

/* Adds `delta` to the counter under `key` in one step of the store, which no other request (on
 * any shard) can interleave with: the value is a signed 64-bit integer stored as decimal text (an
 * absent key counts as 0; te_kv_get reads it as text). Returns 0 and the new value in *value (may
 * be NULL), -EINVAL when the stored value is not such an integer, -ERANGE when the sum would
 * overflow (nothing changes), -ENOSPC over the tenant's quota, or another -errno. */
static inline int te_kv_increment(const char *key, int64_t delta, int64_t *value) {
    int64_t v = delta;
    te_kv kv = { { key, strlen(key) }, (char *)&v, sizeof v };
    int r = (int)te__hypercall(TE_CALL_KV_INCR, (long)&kv, 0);
    if (r == 0 && value) *value = v;
    return r;
}

/* Stores `len` bytes under `key` only if it holds exactly the `expected_len` bytes at `expected`
 * (`expected` NULL: only if `key` is absent), in one step of the store. Returns 1 when stored, 0
 * when the key held something else (or was present, or absent), -ENOSPC over the quota, -E2BIG
 * for a value over 1 MiB, or another -errno. */
static inline int te_kv_compare_and_set(const char *key, const void *expected, size_t expected_len, const void *value, size_t len) {
    te_kv_cas c = { { key, strlen(key) }, { (const char *)expected, expected ? expected_len : 0 }, { (const char *)value, len },
                    expected ? 0 : TE_KV_CAS_ABSENT };
    return (int)te__hypercall(TE_CALL_KV_CAS, (long)&c, 0);
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
