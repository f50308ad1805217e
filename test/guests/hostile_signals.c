// Hostile arguments to the signal system calls, made raw (no libc wrapper fixes them up) and
// printed with their results, natively and under tinyedge alike: bad signal numbers, SIGKILL and
// SIGSTOP, wrong sigset sizes, unreadable and unwritable pointers (and what the call did before
// failing), every flag bit, bad modes and sizes for the alternate stack, a change of it while on
// it, and targets that do not exist.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)
#endif
#define SA_RESTORER_ 0x04000000UL

struct kernel_sigaction {
  uint64_t handler, flags, restorer, mask;
};

static void say(const char *what, long r) {
  printf("%s = %ld%s%s\n", what, r, r < 0 ? " " : "", r < 0 ? strerrorname_np(errno) : "");
  fflush(stdout);
}

#define T(expr) say(#expr, (long)(expr))
#define BAD ((void *)0x10)
#define WILD ((void *)-1L)

static const char read_only[4096] __attribute__((aligned(4096))) = { 1 };
static char alt[16384] __attribute__((aligned(16)));
static void restorer(void) {}
static void handler(int sig) { (void)sig; }

static long sigaction_raw(int sig, const struct kernel_sigaction *act, struct kernel_sigaction *old, unsigned long size) {
  return syscall(SYS_rt_sigaction, sig, act, old, size);
}

static void on_alt(int sig) {
  (void)sig;
  stack_t ss = { .ss_sp = alt, .ss_size = sizeof alt, .ss_flags = 0 };
  T(syscall(SYS_sigaltstack, &ss, NULL));
  stack_t old;
  syscall(SYS_sigaltstack, NULL, &old);
  printf("in the handler: flags %d\n", old.ss_flags);
}

int main(void) {
  struct kernel_sigaction act = { (uint64_t)handler, SA_RESTORER_, (uint64_t)restorer, 0 }, old;
  // rt_sigaction: the size first, then the new action's copy, then the signal number.
  T(sigaction_raw(SIGUSR1, &act, NULL, 4));
  T(sigaction_raw(SIGUSR1, &act, NULL, 16));
  T(sigaction_raw(SIGUSR1, BAD, NULL, 8));
  T(sigaction_raw(SIGUSR1, WILD, NULL, 8));
  T(sigaction_raw(0, BAD, NULL, 8));
  T(sigaction_raw(0, &act, NULL, 8));
  T(sigaction_raw(65, &act, NULL, 8));
  T(sigaction_raw(-1, &act, NULL, 8));
  T(sigaction_raw(SIGKILL, &act, NULL, 8));
  T(sigaction_raw(SIGSTOP, &act, NULL, 8));
  T(sigaction_raw(SIGKILL, NULL, &old, 8));
  printf("SIGKILL's action: handler %lu flags %#lx\n", (unsigned long)old.handler, (unsigned long)old.flags);
  T(sigaction_raw(64, NULL, &old, 8));
  // Every flag bit and every mask bit: the kernel keeps what it knows, never SIGKILL or SIGSTOP.
  struct kernel_sigaction all = { (uint64_t)handler, ~0UL, (uint64_t)restorer, ~0UL };
  T(sigaction_raw(SIGUSR2, &all, NULL, 8));
  T(sigaction_raw(SIGUSR2, NULL, &old, 8));
  printf("read back: flags %#lx mask %#lx\n", (unsigned long)old.flags, (unsigned long)old.mask);
  // An unwritable old action fails the call after the new one is in place.
  struct kernel_sigaction ign = { (uint64_t)SIG_IGN, SA_RESTORER_, (uint64_t)restorer, 0 };
  T(sigaction_raw(SIGUSR2, &ign, (void *)read_only, 8));
  T(sigaction_raw(SIGUSR2, NULL, &old, 8));
  printf("SIGUSR2 now: handler %lu\n", (unsigned long)old.handler);

  // rt_sigprocmask: the size, the new set's copy, then `how`; the old set last.
  uint64_t set = (1UL << (SIGUSR1 - 1)) | (1UL << (SIGKILL - 1)) | (1UL << (SIGSTOP - 1)), got = 0;
  T(syscall(SYS_rt_sigprocmask, SIG_BLOCK, &set, NULL, 7));
  T(syscall(SYS_rt_sigprocmask, 99, BAD, NULL, 8));
  T(syscall(SYS_rt_sigprocmask, 99, &set, NULL, 8));
  T(syscall(SYS_rt_sigprocmask, 99, NULL, &got, 8));
  T(syscall(SYS_rt_sigprocmask, SIG_BLOCK, &set, NULL, 8));
  T(syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &got, 8));
  printf("blocked: %#lx\n", (unsigned long)got);
  T(syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, &set, (void *)read_only, 8));
  T(syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &got, 8));
  printf("blocked after the failed call: %#lx\n", (unsigned long)got);

  // rt_sigpending: sizes up to 8; rt_sigsuspend: exactly 8, then the copy.
  uint64_t pending = 0x5555;
  T(syscall(SYS_rt_sigpending, BAD, 8));
  T(syscall(SYS_rt_sigpending, &pending, 0));
  printf("pending untouched: %#lx\n", (unsigned long)pending);
  T(syscall(SYS_rt_sigpending, &pending, 9));
  T(syscall(SYS_rt_sigpending, &pending, -1L));
  T(syscall(SYS_rt_sigsuspend, &set, 4));
  T(syscall(SYS_rt_sigsuspend, BAD, 8));

  // sigaltstack: the new stack's copy, the mode, the size; the old one written last.
  stack_t ss = { .ss_sp = alt, .ss_size = sizeof alt, .ss_flags = 0 }, os;
  T(syscall(SYS_sigaltstack, BAD, NULL));
  ss.ss_flags = 4;
  T(syscall(SYS_sigaltstack, &ss, NULL));
  ss.ss_flags = SS_ONSTACK;
  ss.ss_size = MINSIGSTKSZ - 1;
  T(syscall(SYS_sigaltstack, &ss, NULL));
  ss.ss_size = (size_t)1 << 62;
  ss.ss_sp = (void *)0x7ffffffff000;
  T(syscall(SYS_sigaltstack, &ss, NULL));
  T(syscall(SYS_sigaltstack, NULL, &os));
  printf("huge stack: sp %p size %#zx flags %d\n", os.ss_sp, os.ss_size, os.ss_flags);
  ss.ss_flags = SS_DISABLE;
  T(syscall(SYS_sigaltstack, &ss, (void *)read_only));
  T(syscall(SYS_sigaltstack, NULL, &os));
  printf("disabled: sp %p size %zu flags %d\n", os.ss_sp, os.ss_size, os.ss_flags);
  ss = (stack_t){ .ss_sp = alt, .ss_size = sizeof alt, .ss_flags = 0 };
  T(syscall(SYS_sigaltstack, &ss, NULL));
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alt;
  sa.sa_flags = SA_ONSTACK;
  sigaction(SIGWINCH, &sa, NULL);
  raise(SIGWINCH);
  ss.ss_flags = SS_AUTODISARM;
  T(syscall(SYS_sigaltstack, &ss, NULL));
  raise(SIGWINCH);

  // Targets: signal numbers past 64 or negative, ids that cannot exist, a thread of another process.
  pid_t me = getpid(), tid = gettid();
  T(syscall(SYS_kill, me, 65));
  T(syscall(SYS_kill, me, -1));
  T(syscall(SYS_kill, me, 0));
  T(syscall(SYS_kill, 0x7fffffff, 0));
  T(syscall(SYS_tkill, 0, SIGUSR1));
  T(syscall(SYS_tkill, -5, SIGUSR1));
  T(syscall(SYS_tkill, 0x7fffffff, 0));
  T(syscall(SYS_tkill, tid, 65));
  T(syscall(SYS_tgkill, 0, tid, 0));
  T(syscall(SYS_tgkill, me, -1, 0));
  T(syscall(SYS_tgkill, me, 0x7fffffff, 0));
  T(syscall(SYS_tgkill, 0x7fffffff, tid, 0));
  T(syscall(SYS_tgkill, me, tid, 0));
  T(syscall(SYS_tgkill, me, tid, 65));
  // SIGUSR1 blocked: sent, it waits; SIGUSR2 ignored: sent, it is dropped.
  T(syscall(SYS_rt_sigprocmask, SIG_BLOCK, &set, NULL, 8));
  T(syscall(SYS_tgkill, me, tid, SIGUSR1));
  T(syscall(SYS_tgkill, me, tid, SIGUSR2));
  T(syscall(SYS_rt_sigpending, &pending, 8));
  printf("pending: %#lx\n", (unsigned long)pending);
  printf("still running\n");
  return 0;
}
