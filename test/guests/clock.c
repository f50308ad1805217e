// Clocks: `clock <host-ms>` gets the host's Date.now() at spawn. CLOCK_REALTIME is within 30 s of
// it, gettimeofday and time agree with CLOCK_REALTIME, CLOCK_MONOTONIC never goes backwards over
// 1000 reads, and nanosleep of 20 ms lasts between 20 ms and 2 s of CLOCK_MONOTONIC.
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long long ms_of(const struct timespec *t) { return (long long)t->tv_sec * 1000 + t->tv_nsec / 1000000; }

static int valid(const struct timespec *t) { return t->tv_sec >= 0 && t->tv_nsec >= 0 && t->tv_nsec < 1000000000; }

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: clock <host time in ms since the epoch>\n");
    return 2;
  }
  long long host_ms = atoll(argv[1]);
  struct timespec rt;
  if (clock_gettime(CLOCK_REALTIME, &rt) != 0 || !valid(&rt)) {
    fprintf(stderr, "clock: clock_gettime(CLOCK_REALTIME) failed or gave an invalid timespec\n");
    return 1;
  }
  long long diff = ms_of(&rt) - host_ms;
  if (diff < -30000 || diff > 30000) {
    fprintf(stderr, "clock: CLOCK_REALTIME is %lld ms, host said %lld ms (%lld ms apart)\n", ms_of(&rt), host_ms, diff);
    return 1;
  }
  printf("CLOCK_REALTIME: within 30 s of the host clock\n");

  struct timeval tv;
  if (gettimeofday(&tv, NULL) != 0 || tv.tv_usec < 0 || tv.tv_usec >= 1000000) {
    fprintf(stderr, "clock: gettimeofday failed or gave an invalid timeval\n");
    return 1;
  }
  long long tv_ms = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
  time_t now = time(NULL);
  if (tv_ms - ms_of(&rt) < 0 || tv_ms - ms_of(&rt) > 5000 || now - rt.tv_sec < -5 || now - rt.tv_sec > 5) {
    fprintf(stderr, "clock: gettimeofday (%lld ms) or time (%lld s) disagrees with CLOCK_REALTIME (%lld ms)\n", tv_ms,
            (long long)now, ms_of(&rt));
    return 1;
  }
  printf("gettimeofday and time: agree with CLOCK_REALTIME\n");

  struct timespec prev, cur;
  clock_gettime(CLOCK_MONOTONIC, &prev);
  for (int i = 0; i < 1000; i++) {
    if (clock_gettime(CLOCK_MONOTONIC, &cur) != 0 || !valid(&cur)) {
      fprintf(stderr, "clock: clock_gettime(CLOCK_MONOTONIC) failed or gave an invalid timespec\n");
      return 1;
    }
    if (cur.tv_sec < prev.tv_sec || (cur.tv_sec == prev.tv_sec && cur.tv_nsec < prev.tv_nsec)) {
      fprintf(stderr, "clock: CLOCK_MONOTONIC went backwards at read %d\n", i);
      return 1;
    }
    prev = cur;
  }
  printf("CLOCK_MONOTONIC: 1000 reads, never backwards\n");

  struct timespec before, after, req = {0, 20 * 1000000};
  clock_gettime(CLOCK_MONOTONIC, &before);
  if (nanosleep(&req, NULL) != 0) {
    fprintf(stderr, "clock: nanosleep failed\n");
    return 1;
  }
  clock_gettime(CLOCK_MONOTONIC, &after);
  long long slept_us = ((long long)after.tv_sec - before.tv_sec) * 1000000 + (after.tv_nsec - before.tv_nsec) / 1000;
  if (slept_us < 20000 || slept_us > 2000000) {
    fprintf(stderr, "clock: nanosleep(20 ms) took %lld us of CLOCK_MONOTONIC\n", slept_us);
    return 1;
  }
  printf("nanosleep 20 ms: took between 20 ms and 2 s\n");
  return 0;
}
