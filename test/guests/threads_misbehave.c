/* Thread programs that end badly or oddly, by the mode in argv[1]:
 *   abba         two threads lock two mutexes in opposite orders: a deadlock
 *   relock       one thread locks a plain mutex it already holds: a deadlock
 *   bomb         creates threads (64 KiB stacks) until pthread_create fails, then ends them all
 *   kill-other   a thread sends SIGTERM, which nothing handles, to another thread
 *   urg-other    the same with SIGURG, whose default action is to be ignored
 *   leader-exit  the first thread ends with exit(5) (one thread), a second one later with exit(9),
 *                which is the program's status: the last thread's
 *   group-exit   a second thread calls exit(7) (exit_group) while the first sleeps */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t a = PTHREAD_MUTEX_INITIALIZER, b = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t barrier;

static void *lock_b_then_a(void *arg) {
    (void)arg;
    pthread_mutex_lock(&b);
    pthread_barrier_wait(&barrier);
    pthread_mutex_lock(&a);
    return NULL;
}

static int abba(void) {
    pthread_t t;
    pthread_barrier_init(&barrier, NULL, 2);
    pthread_create(&t, NULL, lock_b_then_a, NULL);
    pthread_mutex_lock(&a);
    pthread_barrier_wait(&barrier);
    printf("both locks taken, each thread now wants the other's\n");
    pthread_mutex_lock(&b);
    printf("not reached\n");
    return 0;
}

static int relock(void) {
    pthread_mutex_lock(&a);
    printf("locked once, locking again\n");
    pthread_mutex_lock(&a);
    printf("not reached\n");
    return 0;
}

static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t open_cond = PTHREAD_COND_INITIALIZER;
static int opened;

static void *wait_for_gate(void *arg) {
    (void)arg;
    pthread_mutex_lock(&gate);
    while (!opened) pthread_cond_wait(&open_cond, &gate);
    pthread_mutex_unlock(&gate);
    return NULL;
}

static int bomb(void) {
    static pthread_t threads[100000];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    int n = 0, rc = 0;
    while (n < 100000 && (rc = pthread_create(&threads[n], &attr, wait_for_gate, NULL)) == 0) n++;
    printf("created %d threads, then %s\n", n, rc == EAGAIN ? "EAGAIN" : strerror(rc));
    pthread_mutex_lock(&gate);
    opened = 1;
    pthread_cond_broadcast(&open_cond);
    pthread_mutex_unlock(&gate);
    for (int i = 0; i < n; i++) pthread_join(threads[i], NULL);
    pthread_t again;
    rc = pthread_create(&again, &attr, wait_for_gate, NULL);
    if (rc == 0) pthread_join(again, NULL);
    printf("all joined; a new thread can start: %s\n", rc == 0 ? "yes" : strerror(rc));
    return 0;
}

static void *sleep_long(void *arg) {
    (void)arg;
    struct timespec ts = { 0, 300 * 1000000 };
    nanosleep(&ts, NULL);
    return NULL;
}

/* SIGTERM ends the program while it waits in pthread_join; SIGURG lets the join end normally. */
static int signal_other(int sig) {
    pthread_t t;
    pthread_create(&t, NULL, sleep_long, NULL);
    printf("sending signal %d to the other thread\n", sig);
    pthread_kill(t, sig);
    pthread_join(t, NULL);
    printf("joined the other thread\n");
    return 0;
}

static void *exit_later(void *arg) {
    (void)arg;
    struct timespec ts = { 0, 50 * 1000000 };
    nanosleep(&ts, NULL);
    printf("second thread: the first has exited, exiting with 9\n");
    syscall(SYS_exit, 9);
    return NULL;
}

static int leader_exit(void) {
    pthread_t t;
    pthread_create(&t, NULL, exit_later, NULL);
    printf("first thread: exiting with 5\n");
    syscall(SYS_exit, 5);
    return 0;
}

static void *exit_group_now(void *arg) {
    (void)arg;
    printf("second thread: exit(7)\n");
    exit(7);
}

static int group_exit(void) {
    pthread_t t;
    pthread_create(&t, NULL, exit_group_now, NULL);
    sleep_long(NULL);
    printf("not reached\n");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "abba") == 0) return abba();
    if (strcmp(mode, "relock") == 0) return relock();
    if (strcmp(mode, "bomb") == 0) return bomb();
    if (strcmp(mode, "kill-other") == 0) return signal_other(SIGTERM);
    if (strcmp(mode, "urg-other") == 0) return signal_other(SIGURG);
    if (strcmp(mode, "leader-exit") == 0) return leader_exit();
    if (strcmp(mode, "group-exit") == 0) return group_exit();
    fprintf(stderr, "unknown mode\n");
    return 2;
}
