/* POSIX threads as a program uses them, each part printing what it checked so the output can be
 * compared with a native run line for line: the issue's program (4 threads, a condition
 * variable), pthread_join's return values, a mutex-contended counter, thread-local storage,
 * thread ids, pthread_cond_timedwait's ETIMEDOUT, a robust mutex whose owner exits, a spin that
 * only preemption ends, and vector registers that must survive every switch. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* --- the issue's program: 4 workers wait for a go signal on a condition variable ------------ */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int go, done_count, results[4];

static void *worker(void *arg) {
    int id = (int)(intptr_t)arg;
    pthread_mutex_lock(&lock);
    while (!go) pthread_cond_wait(&cond, &lock);
    results[id] = (id + 1) * 100;
    done_count++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    return (void *)(intptr_t)(id * 7 + 1);
}

static void issue_program(void) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    pthread_mutex_lock(&lock);
    go = 1;
    pthread_cond_broadcast(&cond);
    while (done_count < 4) pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < 4; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        printf("worker %d: result %d, returned %ld\n", i, results[i], (long)(intptr_t)ret);
    }
}

/* --- 8 threads, one mutex, one counter ------------------------------------------------------ */
#define COUNTER_THREADS 8
#define COUNTER_ROUNDS 20000
static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static void *count_up(void *arg) {
    (void)arg;
    for (int i = 0; i < COUNTER_ROUNDS; i++) {
        pthread_mutex_lock(&counter_lock);
        long c = counter;
        /* Widen the window a preemption can land in while the lock is held. */
        for (volatile int spin = 0; spin < 20; spin++) {}
        counter = c + 1;
        pthread_mutex_unlock(&counter_lock);
    }
    return NULL;
}

static void contended_counter(void) {
    pthread_t t[COUNTER_THREADS];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (int i = 0; i < COUNTER_THREADS; i++) pthread_create(&t[i], &attr, count_up, NULL);
    for (int i = 0; i < COUNTER_THREADS; i++) pthread_join(t[i], NULL);
    printf("counter: %ld (expected %d)\n", counter, COUNTER_THREADS * COUNTER_ROUNDS);
}

/* --- thread-local storage and thread ids ---------------------------------------------------- */
static __thread int tls_value = 5;
static pid_t tids[3];

static void *tls_thread(void *arg) {
    int id = (int)(intptr_t)arg;
    tls_value += id * 10;
    sched_yield();
    tids[id] = (pid_t)syscall(SYS_gettid);
    return (void *)(intptr_t)tls_value;
}

static void tls_and_tids(void) {
    pthread_t t[3];
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, tls_thread, (void *)(intptr_t)i);
    int distinct = 1;
    for (int i = 0; i < 3; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        printf("tls thread %d saw %ld\n", i, (long)(intptr_t)ret);
    }
    pid_t main_tid = (pid_t)syscall(SYS_gettid);
    for (int i = 0; i < 3; i++) {
        if (tids[i] == main_tid || tids[i] == getpid()) distinct = 0;
        for (int j = 0; j < i; j++) if (tids[i] == tids[j]) distinct = 0;
    }
    printf("main tls %d, main tid is the pid: %s, thread ids distinct: %s\n", tls_value, main_tid == getpid() ? "yes" : "no", distinct ? "yes" : "no");
}

/* --- pthread_cond_timedwait runs out ---------------------------------------------------------- */
static void timed_wait(void) {
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 150 * 1000000;
    if (until.tv_nsec >= 1000000000) { until.tv_sec++; until.tv_nsec -= 1000000000; }
    double t0 = now_ms();
    pthread_mutex_lock(&m);
    int rc = pthread_cond_timedwait(&c, &m, &until);
    pthread_mutex_unlock(&m);
    double waited = now_ms() - t0;
    printf("timedwait: %s, waited at least 140 ms: %s\n", rc == ETIMEDOUT ? "ETIMEDOUT" : strerror(rc), waited >= 140 ? "yes" : "no");
}

/* --- a robust mutex whose owner exits holding it ---------------------------------------------- */
static pthread_mutex_t robust;

static void *die_holding(void *arg) {
    (void)arg;
    pthread_mutex_lock(&robust);
    return NULL;
}

static void robust_mutex(void) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&robust, &a);
    pthread_t t;
    pthread_create(&t, NULL, die_holding, NULL);
    pthread_join(t, NULL);
    int rc = pthread_mutex_lock(&robust);
    printf("robust mutex after its owner exited: %s\n", rc == EOWNERDEAD ? "EOWNERDEAD" : strerror(rc));
    if (rc == EOWNERDEAD) pthread_mutex_consistent(&robust);
    pthread_mutex_unlock(&robust);
}

/* --- a spin no system call ends: only a time slice lets the setter run -------------------------- */
static volatile int flag;

static void *set_flag(void *arg) {
    (void)arg;
    flag = 1;
    return NULL;
}

static void spin_until_set(void) {
    pthread_t t;
    pthread_create(&t, NULL, set_flag, NULL);
    while (!flag) {}
    pthread_join(t, NULL);
    printf("spin ended by the other thread: yes\n");
}

/* --- floating point in registers across many preemptions ---------------------------------------- */
static void *float_work(void *arg) {
    double seed = (double)(intptr_t)arg, a = seed, b = seed / 3, c = 1.0;
    for (long i = 0; i < 6000000; i++) {
        a = a * 1.0000001 + b;
        b = b * 0.9999999 - c * 1e-7;
        c = c + a * 1e-9;
    }
    static char out[4][64];
    snprintf(out[(intptr_t)arg], sizeof out[0], "%.6e %.6e %.6e", a, b, c);
    return out[(intptr_t)arg];
}

static void float_threads(void) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, float_work, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        printf("float thread %d: %s\n", i, (char *)ret);
    }
}

/* --- sleeps in several threads overlap --------------------------------------------------------- */
static void *nap(void *arg) {
    (void)arg;
    struct timespec ts = { 0, 100 * 1000000 };
    nanosleep(&ts, NULL);
    return NULL;
}

/* One after another they would take 800 ms. */
static void parallel_sleeps(void) {
    pthread_t t[8];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    double t0 = now_ms();
    for (int i = 0; i < 8; i++) pthread_create(&t[i], &attr, nap, NULL);
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    double took = now_ms() - t0;
    printf("eight 100 ms sleeps overlapped: %s\n", took >= 95 && took < 700 ? "yes" : "no");
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    issue_program();
    contended_counter();
    tls_and_tids();
    timed_wait();
    robust_mutex();
    spin_until_set();
    float_threads();
    parallel_sleeps();
    printf("all done\n");
    return 3;
}
