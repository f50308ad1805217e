/* SDK program for the address space across resets: each request changes mappings made at init
 * (or makes new ones), and the next request must find them exactly as the snapshot had them. A
 * request that touches memory it may not touch faults, which fails that request only.
 *   /map          maps a page at MAP_AT (MAP_FIXED_NOREPLACE) and writes it: EEXIST if an earlier
 *                 request's mapping outlived its reset
 *   /peek         reads MAP_AT, which no snapshot mapped: must fault
 *   /unprotect    makes the PROT_NONE reservation at NONE_AT read-write and writes it
 *   /touch-none   reads NONE_AT: must fault (PROT_NONE again after the reset)
 *   /ro-write     makes the small read-only mapping inside guest RAM writable and writes it
 *   /ro-poke      writes that read-only mapping: must fault
 *   /protect      makes the first page of the read-write mapping at RW_AT PROT_NONE
 *   /unmap        unmaps the read-write mapping at RW_AT
 *   /check        reads and writes RW_AT's first page: 'I' from init, writable
 *   /body         answers with a 200000-byte body that lies in a large mapping above guest RAM,
 *                 across the chunks its pages were backed in
 *   /bad-body     answers with a body pointer into the PROT_NONE reservation */
#include <tinyedge.h>
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#define MAP_AT ((char *)0x230000000000)
#define NONE_AT ((char *)0x220000000000)
#define RW_AT ((char *)0x210000000000)
#define BODY_SIZE 200000

static char *low_ro;
static char reply[256];

static void say(const char *text) { te_respond_str(200, "text/plain", text); }

static void sayf(const char *what, long value) {
    snprintf(reply, sizeof reply, "%s %ld\n", what, value);
    say(reply);
}

static void on_request(const te_request *req) {
    const char *path = req->path.ptr;
    size_t len = req->path.len;
#define IS(p) (len == sizeof(p) - 1 && memcmp(path, p, len) == 0)
    if (IS("/map")) {
        char *p = mmap(MAP_AT, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (p == MAP_FAILED) return sayf("mmap failed, errno", errno);
        p[0] = 'R';
        return say("mapped\n");
    }
    if (IS("/peek")) return sayf("read", *(volatile char *)MAP_AT);
    if (IS("/unprotect")) {
        if (mprotect(NONE_AT, 4096, PROT_READ | PROT_WRITE) != 0) return sayf("mprotect failed, errno", errno);
        NONE_AT[0] = 'U';
        return say("unprotected\n");
    }
    if (IS("/touch-none")) return sayf("read", *(volatile char *)NONE_AT);
    if (IS("/ro-write")) {
        if (mprotect(low_ro, 4096, PROT_READ | PROT_WRITE) != 0) return sayf("mprotect failed, errno", errno);
        low_ro[0] = 'W';
        return say("written\n");
    }
    if (IS("/ro-poke")) {
        *(volatile char *)low_ro = 'P';
        return say("poked\n");
    }
    if (IS("/protect")) return sayf("mprotect", mprotect(RW_AT, 4096, PROT_NONE));
    if (IS("/unmap")) return sayf("munmap", munmap(RW_AT, 1 << 20));
    if (IS("/check")) {
        volatile char *p = RW_AT;
        char seen = p[0];
        p[0] = 'X';
        snprintf(reply, sizeof reply, "first byte %c, ro byte %d\n", seen, low_ro[0]);
        return say(reply);
    }
    if (IS("/body")) {
        char *big = mmap(NULL, 8 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (big == MAP_FAILED) return sayf("mmap failed, errno", errno);
        /* Touched in an order that backs the pages in pieces far apart in guest RAM. */
        big[3 << 20] = 1;
        big[1 << 20] = 1;
        char *body = big + 65536 - 1000;
        for (int i = 0; i < BODY_SIZE; i++) body[i] = (char)('a' + i % 26);
        return te_respond(200, "text/plain", body, BODY_SIZE);
    }
    if (IS("/bad-body")) return te_respond(200, "text/plain", NONE_AT, 100);
    te_respond_str(404, "text/plain", "no such path\n");
}

int main(void) {
    char *rw = mmap(RW_AT, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    char *none = mmap(NONE_AT, 64 << 10, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    low_ro = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (rw != RW_AT || none != NONE_AT || low_ro == MAP_FAILED) return 1;
    rw[0] = 'I';
    te_on_request(on_request);
    wait_for_requests();
}
