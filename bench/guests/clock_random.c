/* SDK program that reads the wall clock four times and 32 random bytes per request, as a program
 * stamping and signing its answer might: the host's answers the replay journal records. */
#include <tinyedge.h>
#include <sys/random.h>
#include <time.h>

static char body[128];

static void on_request(const te_request *req) {
    (void)req;
    struct timespec ts[4];
    unsigned char rnd[32];
    for (int i = 0; i < 4; i++) clock_gettime(CLOCK_REALTIME, &ts[i]);
    getrandom(rnd, sizeof rnd, 0);
    int n = snprintf(body, sizeof body, "%lld.%09ld %02x\n", (long long)ts[3].tv_sec, ts[3].tv_nsec, rnd[0]);
    te_respond(200, "text/plain", body, (size_t)n);
}

int main(void) {
    te_on_request(on_request);
    wait_for_requests();
}
