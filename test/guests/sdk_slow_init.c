/* SDK program whose start-up is slow, as a hostile upload's may be: main() sleeps
 * SLOW_INIT_SECONDS (from its environment; default 20) before wait_for_requests(). Then it
 * answers every request with "ready". */
#include <tinyedge.h>
#include <unistd.h>

static void on_request(const te_request *req) {
    (void)req;
    te_respond_str(200, "text/plain", "ready\n");
}

int main(void) {
    const char *s = getenv("SLOW_INIT_SECONDS");
    sleep(s ? (unsigned)atoi(s) : 20);
    te_on_request(on_request);
    wait_for_requests();
}
