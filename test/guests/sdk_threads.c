/* SDK program with threads. Before the wait it starts a worker, which waits on a condition variable
 * for jobs, and a ticker, which sleeps 10 ms at a time: both are in the snapshot.
 *   /work?n=N   the worker squares N; the answer names the worker's tid and how many jobs it has
 *               done since the snapshot (always 1: each request starts from the snapshot)
 *   /ticks      waits 100 ms in the handler: the ticker must have run meanwhile
 *   /spawn      starts a thread that blocks forever, and answers its tid and the thread count
 *   /alive?tid=T  whether thread T exists (tgkill with signal 0), and how many threads exist
 *   /deadlock   locks a mutex it holds */
#define _GNU_SOURCE
#include <tinyedge.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t job_ready = PTHREAD_COND_INITIALIZER, job_done = PTHREAD_COND_INITIALIZER;
static long job_input, job_output;
static int job_pending, jobs_done;
static pid_t worker_tid;
static volatile int ticks;
static char body[256];

static void *worker(void *arg) {
    (void)arg;
    pthread_mutex_lock(&lock);
    worker_tid = (pid_t)syscall(SYS_gettid);
    pthread_cond_broadcast(&job_done);
    for (;;) {
        while (!job_pending) pthread_cond_wait(&job_ready, &lock);
        job_output = job_input * job_input;
        job_pending = 0;
        jobs_done++;
        pthread_cond_broadcast(&job_done);
    }
    return NULL;
}

static void *ticker(void *arg) {
    (void)arg;
    for (;;) {
        struct timespec ts = { 0, 10 * 1000000 };
        nanosleep(&ts, NULL);
        ticks++;
    }
    return NULL;
}

static pid_t spawned_tid;

static void *block_forever(void *arg) {
    (void)arg;
    pthread_mutex_lock(&lock);
    spawned_tid = (pid_t)syscall(SYS_gettid);
    pthread_cond_broadcast(&job_done);
    pthread_mutex_unlock(&lock);
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    pthread_mutex_lock(&m);
    for (;;) pthread_cond_wait(&c, &m);
    return NULL;
}

static long query_number(const te_request *req, const char *name) {
    char value[32];
    if (te_query_param(req, name, value, sizeof value) < 0) return -1;
    return strtol(value, NULL, 10);
}

static int path_is(const te_request *req, const char *path) {
    return req->path.len == strlen(path) && memcmp(req->path.ptr, path, req->path.len) == 0;
}

static void on_request(const te_request *req) {
    int n = 0;
    if (path_is(req, "/work")) {
        pthread_mutex_lock(&lock);
        job_input = query_number(req, "n");
        job_pending = 1;
        pthread_cond_signal(&job_ready);
        while (job_pending) pthread_cond_wait(&job_done, &lock);
        n = snprintf(body, sizeof body, "worker %d: %ld, jobs done since the snapshot: %d\n", (int)worker_tid, job_output, jobs_done);
        pthread_mutex_unlock(&lock);
    } else if (path_is(req, "/ticks")) {
        int before = ticks;
        struct timespec ts = { 0, 100 * 1000000 };
        nanosleep(&ts, NULL);
        n = snprintf(body, sizeof body, "ticks at the start: %d, the ticker ran meanwhile: %s\n", before, ticks >= before + 2 ? "yes" : "no");
    } else if (path_is(req, "/spawn")) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 64 * 1024);
        int rc = pthread_create(&t, &attr, block_forever, NULL);
        pthread_mutex_lock(&lock);
        while (rc == 0 && spawned_tid == 0) pthread_cond_wait(&job_done, &lock);
        pthread_mutex_unlock(&lock);
        struct sysinfo si;
        sysinfo(&si);
        n = snprintf(body, sizeof body, "started thread %d, threads now: %d\n", (int)spawned_tid, si.procs);
    } else if (path_is(req, "/alive")) {
        long tid = query_number(req, "tid");
        long rc = syscall(SYS_tgkill, getpid(), tid, 0);
        struct sysinfo si;
        sysinfo(&si);
        n = snprintf(body, sizeof body, "thread %ld: %s, threads: %d\n", tid, rc == 0 ? "alive" : errno == ESRCH ? "gone" : "?", si.procs);
    } else if (path_is(req, "/deadlock")) {
        pthread_mutex_lock(&lock);
        pthread_mutex_lock(&lock);
    } else {
        n = snprintf(body, sizeof body, "ok\n");
    }
    te_respond(200, "text/plain", body, (size_t)n);
}

int main(void) {
    pthread_t w, t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_create(&w, &attr, worker, NULL);
    pthread_create(&t, &attr, ticker, NULL);
    pthread_mutex_lock(&lock);
    while (worker_tid == 0) pthread_cond_wait(&job_done, &lock);
    pthread_mutex_unlock(&lock);
    te_on_request(on_request);
    te_wait_for_requests();
}
