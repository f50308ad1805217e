/* SDK program that prints to stdout (buffered: the SDK flushes it after the handler) and to
 * stderr while it answers: both become log lines of the request. */
#include <tinyedge.h>

static void on_request(const te_request *req) {
    printf("stdout: handling %.*s\n", (int)req->path.len, req->path.ptr);
    fprintf(stderr, "stderr: handling %.*s\n", (int)req->path.len, req->path.ptr);
    te_respond_str(200, "text/plain", "logged\n");
}

int main(void) {
    printf("stdout: initialised\n");
    te_on_request(on_request);
    te_wait_for_requests();
}
