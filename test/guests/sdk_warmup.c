/* Answers "warmup=1" to the host's warm-up request (TE_REQUEST_WARMUP) and "warmup=0" to any
 * other; during the warm-up it also stores "warmed-up" in the key-value store, so that a test can
 * see the flag on a warm-up whose answer the host keeps to itself. */
#include <tinyedge.h>

static void on_request(const te_request *req) {
    int warmup = te_is_warmup(req);
    if (warmup) te_kv_set("warmed-up", "yes", 3);
    te_respond_str(200, "text/plain", warmup ? "warmup=1\n" : "warmup=0\n");
    te_uncacheable();
}

int main(void) {
    te_on_request(on_request);
    te_wait_for_requests();
}
