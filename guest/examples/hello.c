/* hello: the smallest tinyedge program (SDK mode). Cached for a minute by the edge. */
#include <tinyedge.h>

static void on_request(const te_request *req) {
    (void)req;
    te_respond_str(200, "text/plain; charset=utf-8", "hello, world\n");
    te_cache(60, 10, 0);
}

int main(void) {
    te_on_request(on_request);
    te_wait_for_requests();
}
