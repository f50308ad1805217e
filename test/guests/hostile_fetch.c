/* SDK program that hands FETCH hostile sizes and result buffers, by path; each answers
 * "fetch=<result>" (the host call's return value) with status 200:
 *   /headers-40m   the repro: 256 headers whose names and values all point at one 40 MiB buffer
 *   /origin-long   an origin name of 64 bytes
 *   /method-long   a method of 33 bytes
 *   /url-long      a URL of 8 KiB + 1 bytes;   /url-max: exactly 8 KiB (allowed)
 *   /count-257     257 headers;                /count-huge: a header count of 2^64 - 1
 *   /header-long   one header of 16 KiB + 1 bytes (name plus value)
 *   /headers-total 8 headers of 9 KiB each (72 KiB in all)
 *   /body-long     a body of 8 MiB + 1 bytes
 *   /len-huge      a URL length of 2^64 - 1
 *   /result-body   te_fetch_origin() with a response buffer outside guest memory
 *   /result-headers  a response-headers buffer in the kernel's half of the address space
 *   /result-cap    a valid response buffer whose capacity runs past the end of guest memory
 *   /struct-end    a te_fetch whose length-out fields lie past the end of guest memory
 *   /ok            a plain fetch into a good buffer: "fetch=<status> len=<n> body=<body>"
 *   /big, /huge-headers  the same fetch of the origin's /big or /huge-headers (answered "fetch=<result>")
 * Anything else answers "fine". */
#include <tinyedge.h>
#include <sys/auxv.h>

#define BOGUS ((char *)0xdead0000)
#define KERNEL ((char *)0xffff800000000000)
#define MiB (1024 * 1024)

static char big[40 * MiB];
static char body[512];
static char fetched[256];
static te_header headers[300];

static int path_is(const te_request *req, const char *p) {
    return req->path.len == strlen(p) && memcmp(req->path.ptr, p, req->path.len) == 0;
}

static void get(te_fetch *f, const char *url) {
    memset(f, 0, sizeof *f);
    f->method.ptr = "GET"; f->method.len = 3;
    f->url.ptr = url; f->url.len = strlen(url);
}

static void point_headers(int count, uint64_t name_len, uint64_t value_len) {
    for (int i = 0; i < count; i++) {
        headers[i].name.ptr = big; headers[i].name.len = name_len;
        headers[i].value.ptr = big; headers[i].value.len = value_len;
    }
}

/* The end of the guest's user memory: the AT_EXECFN string is the last thing on the initial stack. */
static char *end_of_memory(void) {
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    return (char *)execfn + strlen(execfn) + 1;
}

static void on_request(const te_request *req) {
    te_fetch f;
    long r = 0;
    get(&f, "/data");
    if (path_is(req, "/headers-40m")) {
        point_headers(256, 40 * MiB, 40 * MiB);
        f.headers = headers; f.header_count = 256;
        r = te_fetch_call(&f);
    } else if (path_is(req, "/origin-long")) {
        f.origin.ptr = big; f.origin.len = 64;
        r = te_fetch_call(&f);
    } else if (path_is(req, "/method-long")) {
        f.method.ptr = big; f.method.len = 33;
        r = te_fetch_call(&f);
    } else if (path_is(req, "/url-long") || path_is(req, "/url-max")) {
        big[0] = '/';
        f.url.ptr = big; f.url.len = 8192 + (path_is(req, "/url-long") ? 1 : 0);
        r = te_fetch_call(&f);
    } else if (path_is(req, "/count-257")) {
        point_headers(257, 1, 1);
        f.headers = headers; f.header_count = 257;
        r = te_fetch_call(&f);
    } else if (path_is(req, "/count-huge")) {
        f.headers = headers; f.header_count = UINT64_MAX;
        r = te_fetch_call(&f);
    } else if (path_is(req, "/header-long")) {
        point_headers(1, 8, 16 * 1024 - 7);
        f.headers = headers; f.header_count = 1;
        r = te_fetch_call(&f);
    } else if (path_is(req, "/headers-total")) {
        point_headers(8, 8, 9 * 1024 - 8);
        f.headers = headers; f.header_count = 8;
        r = te_fetch_call(&f);
    } else if (path_is(req, "/body-long")) {
        f.method.ptr = "POST"; f.method.len = 4;
        f.body.ptr = big; f.body.len = 8 * MiB + 1;
        r = te_fetch_call(&f);
    } else if (path_is(req, "/len-huge")) {
        f.url.len = UINT64_MAX;
        r = te_fetch_call(&f);
    } else if (path_is(req, "/result-body")) {
        size_t len = 0;
        r = te_fetch_origin(NULL, "/data", BOGUS, 100, &len);
    } else if (path_is(req, "/result-headers")) {
        f.resp_headers = KERNEL; f.resp_headers_cap = 100;
        r = te_fetch_call(&f);
    } else if (path_is(req, "/result-cap")) {
        f.resp_body = fetched; f.resp_body_cap = (uint64_t)1 << 40;
        r = te_fetch_call(&f);
    } else if (path_is(req, "/struct-end")) {
        r = te__hypercall(TE_CALL_FETCH, (long)(end_of_memory() - 100), 0);
    } else if (path_is(req, "/big") || path_is(req, "/huge-headers")) {
        size_t len = 0;
        r = te_fetch_origin(NULL, path_is(req, "/big") ? "/big" : "/huge-headers", fetched, sizeof fetched, &len);
    } else if (path_is(req, "/ok")) {
        size_t len = 0;
        r = te_fetch_origin(NULL, "/data", fetched, sizeof fetched, &len);
        int n = snprintf(body, sizeof body, "fetch=%ld len=%zu body=%.*s\n", r, len, (int)(len < sizeof fetched ? len : sizeof fetched), fetched);
        te_respond(200, "text/plain", body, (size_t)n);
        return;
    } else {
        te_respond_str(200, "text/plain", "fine\n");
        return;
    }
    int n = snprintf(body, sizeof body, "fetch=%ld\n", r);
    te_respond(200, "text/plain", body, (size_t)n);
}

int main(void) {
    memset(big, 'a', sizeof big);
    te_on_request(on_request);
    wait_for_requests();
}
