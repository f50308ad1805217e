/* SDK program whose response header values hold bytes the sandbox lets through (it refuses only
 * NUL, CR and LF) but HTTP/1.1 does not allow in a field value, by path:
 *   /ctl   a control character (0x01)     /del   DEL (0x7f)
 *   /utf8  "€", a character above U+00FF once decoded, which Node cannot write as one byte
 * Anything else answers "fine" with a plain X-Fine header. */
#include <tinyedge.h>

static int path_is(const te_request *req, const char *p) {
    return req->path.len == strlen(p) && memcmp(req->path.ptr, p, req->path.len) == 0;
}

static void on_request(const te_request *req) {
    te_respond_str(200, "text/plain", "fine\n");
    if (path_is(req, "/ctl")) te_header_add("X-Odd", "a\x01" "b");
    else if (path_is(req, "/del")) te_header_add("X-Odd", "a\x7f" "b");
    else if (path_is(req, "/utf8")) te_header_add("X-Odd", "\xe2\x82\xac");
    else te_header_add("X-Fine", "yes");
}

int main(void) {
    te_on_request(on_request);
    wait_for_requests();
}
