/* The HTTP fuzzer's program (bench/fuzz-http): answers every request with the target it received,
 * in the X-Echo-Url header and in the body ("echo <target>\n"), so the fuzzer can tell which
 * request a response belongs to. Bytes outside visible ASCII and '\' are written as \xHH, as the
 * fuzzer's origin writes them. */
#include <tinyedge.h>

static char escaped[4 * 8192 + 1];
static char body[sizeof escaped + 8];

static void on_request(const te_request *req) {
    size_t n = 0;
    for (size_t i = 0; i < req->url.len && n + 5 < sizeof escaped; i++) {
        unsigned char c = (unsigned char)req->url.ptr[i];
        if (c > 0x20 && c < 0x7f && c != '\\') escaped[n++] = (char)c;
        else n += (size_t)snprintf(escaped + n, sizeof escaped - n, "\\x%02x", c);
    }
    escaped[n] = '\0';
    int len = snprintf(body, sizeof body, "echo %s\n", escaped);
    te_respond(200, "text/plain", body, (size_t)len);
    te_header_add("X-Echo-Url", escaped);
}

int main(void) {
    te_on_request(on_request);
    te_wait_for_requests();
}
