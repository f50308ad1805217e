/* SDK program for the segment-reset test: every request reports FS base, GS base and the DS/ES
 * selectors it found; a request to /dirty then changes all four behind the host's back (wrfsbase,
 * wrgsbase, selector loads) as its last act. The next request must find them as the snapshot had
 * them. Built with -fno-stack-protector: nothing may read TLS after FS base moves. */
#include <tinyedge.h>
#include <stdint.h>

static char body[256];

static void on_request(const te_request *req) {
    uint64_t fs, gs;
    uint16_t ds, es;
    __asm__ volatile("rdfsbase %0\n rdgsbase %1\n mov %%ds, %2\n mov %%es, %3" : "=r"(fs), "=r"(gs), "=r"(ds), "=r"(es));
    int n = snprintf(body, sizeof body, "fs=%llx gs=%llx ds=%x es=%x\n", (unsigned long long)fs, (unsigned long long)gs, ds, es);
    te_respond(200, "text/plain", body, (size_t)n);
    if (req->path.len == 6 && memcmp(req->path.ptr, "/dirty", 6) == 0) {
        uint64_t bogus_fs = 0x1234000, bogus_gs = 0x7777000;
        __asm__ volatile("wrgsbase %1\n mov $0x2b, %%eax\n mov %%ax, %%ds\n mov %%ax, %%es\n wrfsbase %0"
                         : : "r"(bogus_fs), "r"(bogus_gs) : "rax", "memory");
    }
}

int main(void) {
    te_on_request(on_request);
    wait_for_requests();
}
