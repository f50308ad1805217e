/* echo: a JSON API that describes the request it received (method, URL, headers, body). */
#include <tinyedge.h>

static char out[256 * 1024];
static size_t used;
static unsigned long requests_since_boot; /* always 0 on entry: every request starts from the snapshot */

static void put(const char *s, size_t n) {
    if (used + n < sizeof out) { memcpy(out + used, s, n); used += n; }
}
static void puts_(const char *s) { put(s, strlen(s)); }

/* Appends `s` as a JSON string literal. */
static void json_string(const char *s, size_t n) {
    put("\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; put(esc, 2); }
        else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); put(esc, 6); }
        else put((const char *)&c, 1);
    }
    put("\"", 1);
}

static void on_request(const te_request *req) {
    used = 0;
    puts_("{\"method\":"); json_string(req->method.ptr, req->method.len);
    puts_(",\"url\":"); json_string(req->url.ptr, req->url.len);
    puts_(",\"path\":"); json_string(req->path.ptr, req->path.len);
    puts_(",\"query\":"); json_string(req->query.ptr, req->query.len);
    puts_(",\"headers\":{");
    for (uint32_t i = 0; i < req->header_count; i++) {
        if (i) puts_(",");
        json_string(req->headers[i].name.ptr, req->headers[i].name.len);
        puts_(":");
        json_string(req->headers[i].value.ptr, req->headers[i].value.len);
    }
    puts_("},\"body\":"); json_string(req->body.ptr, req->body.len);
    char count[64];
    snprintf(count, sizeof count, ",\"requests_since_boot\":%lu}\n", requests_since_boot++);
    puts_(count);
    te_respond(200, "application/json", out, used);
    te_header_add("X-Echo", "tinyedge");
    te_uncacheable();
    te_logf("echo %.*s %.*s", (int)req->method.len, req->method.ptr, (int)req->url.len, req->url.ptr);
}

int main(void) {
    te_on_request(on_request);
    te_wait_for_requests();
}
