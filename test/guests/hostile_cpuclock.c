/* CPU clocks as a prober would use them: the ids Linux builds from a pid (MAKE_PROCESS_CPUCLOCK,
 * `(~pid << 3) | which`, thread clocks with bit 2) for this program's own pid, for pid 0 (the
 * caller), for other pids that exist on the host (2, the test runner's pid) or do not (4000000),
 * and ids that name nothing. `hostile_cpuclock <runner pid>` prints, per id, what clock_gettime,
 * clock_getres and clock_nanosleep (relative, zero) answer (0 or -errno), then the CPU times the
 * program's own clocks read ("ns <id> <nanoseconds>"), then spins until CLOCK_PROCESS_CPUTIME_ID
 * advances 30 ms and prints how much CPU and wall time that took ("spin <cpu ns> <wall ns>"). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CPUCLOCK(pid, which) ((int)((~(unsigned)(pid) << 3) | (which)))

static long raw(long r) { return r == -1 ? -errno : r; }

static long long ns_of(const struct timespec *t) { return t->tv_sec * 1000000000LL + t->tv_nsec; }

/* Prints what the three clock calls answer for `id`; returns clock_gettime's answer and the time. */
static long probe(const char *name, int id, long long *ns) {
    struct timespec t = { -1, -1 }, res = { -1, -1 }, zero = { 0, 0 };
    long get = raw(syscall(SYS_clock_gettime, (long)id, &t));
    long getres = raw(syscall(SYS_clock_getres, (long)id, &res));
    long nsleep = raw(syscall(SYS_clock_nanosleep, (long)id, 0L, &zero, 0L));
    printf("%s: gettime=%ld getres=%ld nanosleep=%ld\n", name, get, getres, nsleep);
    if (get == 0) *ns = ns_of(&t);
    return get;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: hostile_cpuclock <runner pid>\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    int runner = atoi(argv[1]);
    int me = getpid();
    static const char *which[] = { "PROF", "VIRT", "SCHED", "3" };
    static const struct { const char *name; int pid; } pids[] = { { "pid 0", 0 }, { "own pid", -1 }, { "pid 2", 2 }, { "runner pid", -2 }, { "pid 4000000", 4000000 } };
    struct { char name[48]; long long ns; } own[32];
    int owned = 0;
    long long ns = 0;

    if (probe("CLOCK_PROCESS_CPUTIME_ID", CLOCK_PROCESS_CPUTIME_ID, &ns) == 0) { snprintf(own[owned].name, 48, "CLOCK_PROCESS_CPUTIME_ID"); own[owned++].ns = ns; }
    if (probe("CLOCK_THREAD_CPUTIME_ID", CLOCK_THREAD_CPUTIME_ID, &ns) == 0) { snprintf(own[owned].name, 48, "CLOCK_THREAD_CPUTIME_ID"); own[owned++].ns = ns; }
    for (unsigned p = 0; p < sizeof pids / sizeof pids[0]; p++) {
        int pid = pids[p].pid == -1 ? me : pids[p].pid == -2 ? runner : pids[p].pid;
        for (int thread = 0; thread <= 4; thread += 4) {
            for (int w = 0; w < 4; w++) {
                char name[48];
                snprintf(name, sizeof name, "%s %s %s", pids[p].name, thread ? "thread" : "process", which[w]);
                if (probe(name, CPUCLOCK(pid, w | thread), &ns) == 0) { snprintf(own[owned].name, 48, "%s", name); own[owned++].ns = ns; }
            }
        }
    }
    /* Ids that name no clock here: alarm clocks (no RTC), the hole at 10, past the last, a clock fd, the extremes. */
    static const struct { const char *name; int id; } others[] = {
        { "CLOCK_REALTIME_ALARM", 8 }, { "CLOCK_BOOTTIME_ALARM", 9 }, { "clock 10", 10 }, { "clock 12", 12 }, { "clock 16", 16 },
        { "clock fd 1000", (int)((~1000u << 3) | 3) }, { "clock -1", -1 }, { "INT_MAX", INT_MAX }, { "INT_MIN", INT_MIN },
    };
    for (unsigned i = 0; i < sizeof others / sizeof others[0]; i++) probe(others[i].name, others[i].id, &ns);

    for (int i = 0; i < owned; i++) printf("ns %s %lld\n", own[i].name, own[i].ns);

    struct timespec c0, c1, w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    volatile unsigned long sink = 0;
    do {
        for (int i = 0; i < 100000; i++) sink += (unsigned long)i * 2654435761u;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    } while (ns_of(&c1) - ns_of(&c0) < 30000000LL);
    clock_gettime(CLOCK_MONOTONIC, &w1);
    printf("spin %lld %lld\n", ns_of(&c1) - ns_of(&c0), ns_of(&w1) - ns_of(&w0));
    return 0;
}
