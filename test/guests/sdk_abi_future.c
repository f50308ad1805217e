/* An SDK program built for an ABI version after this host's: its first WAIT declares
 * TE_ABI_VERSION + 1, as a program built with a newer tinyedge.h would. It must not load. */
#include <tinyedge.h>

int main(void) {
    te__hypercall(TE_CALL_WAIT, 0, TE_ABI_VERSION + 1);
    for (;;) {
        te__reset_response();
        te_respond_str(200, "text/plain", "future\n");
        te__hypercall(TE_CALL_WAIT, (long)&te__response, 0);
    }
}
