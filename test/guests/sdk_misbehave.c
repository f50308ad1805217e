/* SDK program that misbehaves on demand, by path: /crash (NULL dereference), /loop (never ends),
 * /oom (exhausts memory, then writes through NULL), /big (a 4 MiB response), /exit (exit(3)),
 * /noresponse (returns without responding), /badheader, /clock (reports CLOCK_REALTIME in ms),
 * /burn?ms=N (spins for N ms of wall-clock time, default 50, then answers "burnt"), /work?n=N (a
 * fixed amount of computation: N × 100000 loop iterations, then answers "worked").
 * Anything else answers "ok" with a counter that must always read 0. */
#include <tinyedge.h>
#include <stdlib.h>
#include <time.h>

static int served;
static char body[128];
static char big[4 << 20];

static int path_is(const te_request *req, const char *p) {
    return req->path.len == strlen(p) && memcmp(req->path.ptr, p, req->path.len) == 0;
}

static void on_request(const te_request *req) {
    if (path_is(req, "/crash")) { volatile int *p = 0; *p = 1; }
    if (path_is(req, "/loop")) { for (;;) __asm__ volatile(""); }
    if (path_is(req, "/oom")) {
        for (;;) { char *p = malloc(1 << 20); if (!p) break; memset(p, 1, 1 << 20); }
        volatile int *p = 0; *p = 1;
    }
    if (path_is(req, "/big")) { memset(big, 'x', sizeof big); te_respond(200, "text/plain", big, sizeof big); return; }
    if (path_is(req, "/exit")) exit(3);
    if (path_is(req, "/noresponse")) return;
    if (path_is(req, "/badheader")) { te_respond_str(200, "text/plain", "x"); te_header_add("Bad Header", "v"); return; }
    if (path_is(req, "/clock")) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int n = snprintf(body, sizeof body, "%lld\n", (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
        te_respond(200, "text/plain", body, (size_t)n);
        return;
    }
    if (path_is(req, "/burn")) {
        char arg[16];
        long ms = te_query_param(req, "ms", arg, sizeof arg) > 0 ? atol(arg) : 50;
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do {
            for (volatile int i = 0; i < 100000; i++) {}
            clock_gettime(CLOCK_MONOTONIC, &t);
        } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
        te_respond_str(200, "text/plain", "burnt\n");
        return;
    }
    if (path_is(req, "/work")) {
        char arg[16];
        long rounds = te_query_param(req, "n", arg, sizeof arg) > 0 ? atol(arg) : 1;
        for (long r = 0; r < rounds; r++)
            for (volatile int i = 0; i < 100000; i++) {}
        te_respond_str(200, "text/plain", "worked\n");
        return;
    }
    int n = snprintf(body, sizeof body, "ok served=%d\n", served++);
    te_respond(200, "text/plain", body, (size_t)n);
}

int main(void) {
    te_on_request(on_request);
    wait_for_requests();
}
