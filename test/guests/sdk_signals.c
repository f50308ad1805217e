/* SDK program whose requests change every part of the signal state, which the reset must undo.
 * Before the wait: a handler for SIGUSR2 (counting), nothing else. Each request reports the state
 * it found — SIGUSR1's and SIGUSR2's actions, the blocked mask, the alternate stack, the pending
 * set, the handler counts — then changes all of it: a handler for SIGUSR1 (raised: it runs),
 * SIGUSR2 ignored, SIGTERM blocked and raised (left pending), an alternate stack. The next request
 * must find the snapshot's state again. */
#define _GNU_SOURCE
#include <tinyedge.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static volatile int usr1_hits, usr2_hits;
static char alt[16384];
static char body[512];

static void on_usr1(int sig) { (void)sig; usr1_hits++; }
static void on_usr2(int sig) { (void)sig; usr2_hits++; }

static unsigned long bits(const sigset_t *s) {
    unsigned long m = 0;
    for (int i = 1; i < 64; i++) if (sigismember(s, i)) m |= 1UL << (i - 1);
    return m;
}

static void on_request(const te_request *req) {
    (void)req;
    struct sigaction usr1, usr2;
    sigaction(SIGUSR1, NULL, &usr1);
    sigaction(SIGUSR2, NULL, &usr2);
    sigset_t blocked, pending;
    sigprocmask(SIG_SETMASK, NULL, &blocked);
    sigpending(&pending);
    stack_t ss;
    sigaltstack(NULL, &ss);
    int n = snprintf(body, sizeof body,
                     "USR1 %s, USR2 %s, blocked %#lx, pending %#lx, alternate stack flags %d size %zu, hits %d %d\n",
                     usr1.sa_handler == SIG_DFL ? "default" : "handled", usr2.sa_handler == on_usr2 ? "handled" : usr2.sa_handler == SIG_IGN ? "ignored" : "?",
                     bits(&blocked), bits(&pending), ss.ss_flags, ss.ss_size, usr1_hits, usr2_hits);
    signal(SIGUSR1, on_usr1);
    raise(SIGUSR1);
    signal(SIGUSR2, SIG_IGN);
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, NULL);
    raise(SIGTERM);
    stack_t mine = { .ss_sp = alt, .ss_size = sizeof alt, .ss_flags = 0 };
    sigaltstack(&mine, NULL);
    te_respond(200, "text/plain", body, (size_t)n);
}

int main(void) {
    signal(SIGUSR2, on_usr2);
    raise(SIGUSR2);
    te_on_request(on_request);
    te_wait_for_requests();
}
