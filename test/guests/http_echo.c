/* The HTTP fuzzer's program (bench/fuzz-http): answers every request with the target it received,
 * in the X-Echo-Url header and in the body ("echo <target>\n"), and with its X-Follow field in
 * X-Echo-Follow, so the fuzzer can tell which request a response belongs to. Bytes outside
 * visible ASCII and '\' are written as \xHH, as the fuzzer's origin writes them. */
#include <tinyedge.h>

/* A target is at most 8 KiB (the front's limit); escaped, each byte takes up to 4. The response
 * keeps pointers to its header values until the program returns: one buffer per value. */
static char url[4 * 8192 + 1];
static char follow[4 * 8192 + 1];
static char body[sizeof url + 8];

static void escape(char *out, size_t cap, const char *s, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len && n + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c > 0x20 && c < 0x7f && c != '\\') out[n++] = (char)c;
        else n += (size_t)snprintf(out + n, cap - n, "\\x%02x", c);
    }
    out[n] = '\0';
}

static void on_request(const te_request *req) {
    escape(url, sizeof url, req->url.ptr, req->url.len);
    int len = snprintf(body, sizeof body, "echo %s\n", url);
    te_respond(200, "text/plain", body, (size_t)len);
    te_header_add("X-Echo-Url", url);
    size_t follow_len = 0;
    const char *value = te_request_header(req, "x-follow", &follow_len);
    if (value != NULL) {
        escape(follow, sizeof follow, value, follow_len);
        te_header_add("X-Echo-Follow", follow);
    }
}

int main(void) {
    te_on_request(on_request);
    te_wait_for_requests();
}
