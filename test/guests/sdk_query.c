/* The query-string and percent-decoding helpers on whatever the test sends:
 *   /param   te_query_param(req, <X-Name header>, buf, <X-Cap header, default 64>)
 *   /decode  te_percent_decode(<the raw query>, ..., buf, <X-Cap>, <X-Flags header: p = PLUS,
 *            n = ALLOW_NUL>)
 * Each answers "r=<result> value=<the first r bytes of buf, or buf as a C string on an error,
 * bytes outside printable ASCII as \xHH> guard=<ok|smashed>", where the guard is the 16 bytes
 * after the buffer's capacity: the helpers must never write past it. */
#include <tinyedge.h>

static char area[16384 + 16];
static char out[65536];

static int path_is(const te_request *req, const char *p) {
    return req->path.len == strlen(p) && memcmp(req->path.ptr, p, req->path.len) == 0;
}

/* A request header as a C string (empty when absent). */
static const char *header(const te_request *req, const char *name, char *into, size_t cap) {
    size_t len = 0;
    const char *v = te_request_header(req, name, &len);
    if (!v || len >= cap) len = 0;
    else memcpy(into, v, len);
    into[len] = '\0';
    return into;
}

static void on_request(const te_request *req) {
    char name[256], cap_text[32], flags_text[8];
    header(req, "X-Cap", cap_text, sizeof cap_text);
    size_t cap = cap_text[0] ? (size_t)atol(cap_text) : 64;
    if (cap > sizeof area - 16) cap = sizeof area - 16;
    memset(area, 0xAA, sizeof area);
    long r;
    if (path_is(req, "/param")) {
        r = te_query_param(req, header(req, "X-Name", name, sizeof name), area, cap);
    } else if (path_is(req, "/decode")) {
        header(req, "X-Flags", flags_text, sizeof flags_text);
        unsigned flags = (strchr(flags_text, 'p') ? TE_DECODE_PLUS : 0) | (strchr(flags_text, 'n') ? TE_DECODE_ALLOW_NUL : 0);
        r = te_percent_decode(req->query.ptr, req->query.len, area, cap, flags);
    } else {
        te_respond_str(404, "text/plain", "unknown\n");
        return;
    }
    int guard = 1;
    for (size_t i = cap; i < cap + 16; i++) guard &= area[i] == (char)0xAA;
    size_t shown = r >= 0 ? (size_t)r : cap > 0 ? strnlen(area, cap) : 0;
    size_t n = (size_t)snprintf(out, sizeof out, "r=%ld value=", r);
    for (size_t i = 0; i < shown && n + 8 < sizeof out; i++) {
        unsigned char c = (unsigned char)area[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') out[n++] = (char)c;
        else n += (size_t)snprintf(out + n, sizeof out - n, "\\x%02x", c);
    }
    n += (size_t)snprintf(out + n, sizeof out - n, " guard=%s\n", guard ? "ok" : "smashed");
    te_respond(200, "text/plain", out, n);
}

int main(void) {
    te_on_request(on_request);
    te_wait_for_requests();
}
