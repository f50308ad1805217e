/* An SDK program as the header built them before the first WAIT declared a version: RSI is 0
 * there. It speaks version 1 and must load and answer. */
#include <tinyedge.h>

int main(void) {
    const te_request *req = (const te_request *)te__hypercall(TE_CALL_WAIT, 0, 0);
    for (;;) {
        te__reset_response();
        te_respond_str(200, "text/plain", req->abi_version == 1 ? "unversioned, told version 1\n" : "unversioned, told another version\n");
        req = (const te_request *)te__hypercall(TE_CALL_WAIT, (long)&te__response, 0);
    }
}
