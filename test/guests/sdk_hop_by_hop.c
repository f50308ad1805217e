/* SDK program whose responses carry connection-level and framing fields a program has no say in:
 *   generate: Connection naming X-Private, X-Private, Keep-Alive, Upgrade, Proxy-Authenticate and
 *             a wrong Content-Length, next to the end-to-end X-Public; cached for a minute.
 *   deliver:  the same kinds of fields again, next to X-Delivered.
 * The host must pass on X-Public and X-Delivered only. */
#include <tinyedge.h>

static void generate(void) {
    te_respond_str(200, "text/plain", "hop\n");
    te_header_add("Connection", "X-Private");
    te_header_add("X-Private", "secret");
    te_header_add("Keep-Alive", "timeout=99");
    te_header_add("Upgrade", "h2c");
    te_header_add("Proxy-Authenticate", "Basic");
    te_header_add("Content-Length", "999");
    te_header_add("X-Public", "yes");
    te_cache(60, 0, 0);
}

static void deliver(void) {
    te_set_header("Connection", "X-Deliver-Private");
    te_set_header("X-Deliver-Private", "secret");
    te_set_header("Transfer-Encoding", "chunked");
    te_set_header("Content-Length", "1");
    te_set_header("X-Delivered", "yes");
}

static void on_request(const te_request *req) {
    if (req->phase == TE_PHASE_DELIVER) deliver();
    else generate();
}

int main(void) {
    te_on_request(on_request);
    wait_for_requests();
}
