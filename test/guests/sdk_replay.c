/* SDK program whose failures depend on everything the host answers it, for the replay tests:
 * every request reads the key-value store, the clock, getrandom and te_request.random, and a
 * sub-request's answer, and mixes them into one hash h.
 *   /set    stores "seed" = "v1" (the other paths read it)
 *   /fault  faults writing to a page chosen by h: the fault's address says whether a replay got
 *           the very same answers
 *   /spin   spins until the time limit when the store said "v1" and the origin answered 200
 *   /bigfetch  reads the store and the clock, then fetches /big (more than a journal keeps), then faults
 *   /wait   reads the store and the clock, then waits on a sub-request the origin never answers
 *   /many   reads the clock 600 times (more steps than a journal keeps), then faults
 *   /hostile  reads the clock into a bad pointer (EFAULT: no answer given, none recorded), then
 *           64 KiB of random bytes (more than a journal keeps), then faults
 *   other   answers h */
#include <tinyedge.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static char fetched[1024];
static char body[256];

static int is(te_str s, const char *p) { size_t n = strlen(p); return s.len == n && memcmp(s.ptr, p, n) == 0; }

static uint64_t mix(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static void on_request(const te_request *req) {
    if (is(req->path, "/set")) {
        int ok = te_kv_set("seed", "v1", 2);
        te_respond_str(ok == 0 ? 200 : 500, "text/plain", "stored\n");
        return;
    }
    char value[64];
    long vlen = te_kv_get("seed", value, sizeof value);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t h = 14695981039346656037ull;
    if (vlen > 0) h = mix(h, value, (size_t)vlen);
    h = mix(h, &ts, sizeof ts);
    if (is(req->path, "/many")) {
        for (int i = 0; i < 600; i++) clock_gettime(CLOCK_MONOTONIC, &ts);
        *(volatile char *)16 = 1;
    }
    if (is(req->path, "/hostile")) {
        static unsigned char lots[64 * 1024];
        long bad = syscall(SYS_clock_gettime, CLOCK_REALTIME, (void *)8);
        long got = getrandom(lots, sizeof lots, 0);
        if (bad == -1 && got == (long)sizeof lots) *(volatile char *)24 = 1;
        te_respond_str(500, "text/plain", "the host did not answer as expected\n");
        return;
    }
    if (is(req->path, "/bigfetch")) {
        size_t len = 0;
        int status = te_fetch_origin(NULL, "/big", fetched, sizeof fetched, &len);
        if (status == 200 && len > sizeof fetched) *(volatile char *)32 = 1;
        te_respond_str(500, "text/plain", "the origin did not answer /big as expected\n");
        return;
    }
    if (is(req->path, "/wait")) {
        size_t len = 0;
        te_fetch_origin(NULL, "/hang", fetched, sizeof fetched, &len);
        te_respond_str(200, "text/plain", "the origin answered /hang\n");
        return;
    }
    size_t flen = 0;
    int status = te_fetch_origin(NULL, "/seed", fetched, sizeof fetched, &flen);
    unsigned char rnd[16];
    getrandom(rnd, sizeof rnd, 0);
    h = mix(h, &status, sizeof status);
    h = mix(h, fetched, flen < sizeof fetched ? flen : sizeof fetched);
    h = mix(h, rnd, sizeof rnd);
    h = mix(h, req->random, sizeof req->random);
    if (is(req->path, "/fault")) {
        /* Below the program's first segment (0x400000): a page no program maps. */
        volatile char *p = (volatile char *)(uintptr_t)(0x10000 + (h % 0x3e0) * 0x1000);
        *p = 1;
    }
    if (is(req->path, "/spin") && vlen == 2 && memcmp(value, "v1", 2) == 0 && status == 200) {
        for (;;) __asm__ volatile("" ::: "memory");
    }
    int n = snprintf(body, sizeof body, "h=%016llx\n", (unsigned long long)h);
    te_respond(200, "text/plain", body, (size_t)n);
}

int main(void) {
    te_on_request(on_request);
    wait_for_requests();
}
