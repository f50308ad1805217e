/* SDK program that answers with random bytes from three sources: getrandom(), rand() and the
 * entropy the host put in the request. Two requests must never answer the same. */
#include <tinyedge.h>
#include <sys/random.h>

static char body[256];

static void hex(char *out, const unsigned char *in, size_t n) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) { out[2 * i] = digits[in[i] >> 4]; out[2 * i + 1] = digits[in[i] & 15]; }
    out[2 * n] = 0;
}

static void on_request(const te_request *req) {
    unsigned char bytes[16];
    char a[33], c[65];
    if (getrandom(bytes, sizeof bytes, 0) != (ssize_t)sizeof bytes) { te_respond_str(500, "text/plain", "getrandom failed\n"); return; }
    hex(a, bytes, sizeof bytes);
    hex(c, req->random, 32);
    int n = snprintf(body, sizeof body, "getrandom=%s rand=%d request=%s\n", a, rand(), c);
    te_respond(200, "text/plain", body, (size_t)n);
}

int main(void) {
    te_on_request(on_request);
    wait_for_requests();
}
