/* SDK program that reads its CPU clock (CLOCK_PROCESS_CPUTIME_ID) at the start of each request
 * and answers "start=<ns> end=<ns>"; on /spin it first burns 200 ms of its own CPU time. main()
 * burns 20 ms before wait_for_requests(), so the snapshot holds some CPU time of its own. A
 * request must start from the snapshot's CPU time, never from an earlier request's (nor from the
 * host's). */
#include <tinyedge.h>
#include <time.h>

static char body[128];

static long long cpu_ns(void) {
    struct timespec t;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t) != 0) return -1;
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long long burn(long long ns) {
    long long start = cpu_ns(), now = start;
    volatile unsigned long sink = 0;
    while (now >= 0 && now - start < ns) {
        for (int i = 0; i < 100000; i++) sink += (unsigned long)i * 2654435761u;
        now = cpu_ns();
    }
    return now;
}

static void on_request(const te_request *req) {
    long long start = cpu_ns(), end = start;
    if (req->path.len == 5 && memcmp(req->path.ptr, "/spin", 5) == 0) end = burn(200000000LL);
    int n = snprintf(body, sizeof body, "start=%lld end=%lld\n", start, end);
    te_respond(200, "text/plain", body, (size_t)n);
}

int main(void) {
    burn(20000000LL);
    te_on_request(on_request);
    wait_for_requests();
}
