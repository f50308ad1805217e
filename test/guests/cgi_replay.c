/* CGI program for the replay tests: reads the clock and getrandom, and for a URL containing
 * "crash" faults writing to a page chosen by what it read (so only a replay given the very same
 * answers faults at the same address); otherwise it answers with what it read. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

int main(void) {
    struct timespec ts;
    unsigned char rnd[16];
    clock_gettime(CLOCK_REALTIME, &ts);
    getrandom(rnd, sizeof rnd, 0);
    uint64_t h = 14695981039346656037ull;
    const unsigned char *p = (const unsigned char *)&ts;
    for (size_t i = 0; i < sizeof ts; i++) h = (h ^ p[i]) * 1099511628211ull;
    for (size_t i = 0; i < sizeof rnd; i++) h = (h ^ rnd[i]) * 1099511628211ull;
    const char *uri = getenv("REQUEST_URI");
    if (uri != NULL && strstr(uri, "crash") != NULL) *(volatile char *)(uintptr_t)(0x10000 + (h % 0x3e0) * 0x1000) = 1;
    printf("Content-Type: text/plain\r\n\r\nh=%016llx\n", (unsigned long long)h);
    return 0;
}
