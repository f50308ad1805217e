/* SDK program that answers every request with its FS and GS base as the CPU has them (rdfsbase,
 * rdgsbase): a VM made from its snapshot must show the snapshot's, never those of a program that
 * ran on the same pooled VM before. */
#include <tinyedge.h>
#include <stdint.h>

static char body[64];

static void on_request(const te_request *req) {
    (void)req;
    uint64_t fs, gs;
    __asm__ volatile("rdfsbase %0" : "=r"(fs));
    __asm__ volatile("rdgsbase %0" : "=r"(gs));
    int n = snprintf(body, sizeof body, "fs=%lx gs=%lx\n", (unsigned long)fs, (unsigned long)gs);
    te_respond(200, "text/plain", body, (size_t)n);
}

int main(void) {
    te_on_request(on_request);
    te_wait_for_requests();
}
