// Signals delivered to handlers, each case printing what a program can see, so that the output is
// the same natively and under tinyedge: faults caught with siglongjmp (si_code, si_addr), raise()
// with SA_SIGINFO, SIG_IGN, blocking and unblocking, sigpending, sigsuspend, handler masks,
// SA_NODEFER, SA_RESETHAND, the alternate stack (SS_AUTODISARM too), nested and queued signals,
// the FPU state in the frame (a change there seen after the return), vector registers kept
// across a handler that clobbers them, and signals to other threads (one waiting on a condition
// variable, one spinning, one taking a signal to the process that the main thread blocks). `signals overflow` ends with a stack overflow caught on the
// alternate stack; `signals abort` with abort() after its handler returned; `signals segv-loop`
// never ends: its SIGSEGV handler returns to the faulting read, again and again.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef SA_RESTORER
#define SA_RESTORER 0x04000000
#endif
#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)
#endif

static sigjmp_buf env;
static volatile int hits, last_sig, last_code;
static volatile uintptr_t last_addr, handler_sp;
static volatile unsigned long handler_mask;
static char alt[65536] __attribute__((aligned(16)));

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fflush(stdout);
}

static unsigned long blocked_now(void) {
  sigset_t s;
  sigprocmask(SIG_SETMASK, NULL, &s);
  unsigned long m = 0;
  for (int i = 1; i < 64; i++) if (sigismember(&s, i)) m |= 1UL << (i - 1);
  return m;
}

static void on(int sig, void (*fn)(int, siginfo_t *, void *), int flags, const sigset_t *mask) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = fn;
  sa.sa_flags = SA_SIGINFO | flags;
  if (mask) sa.sa_mask = *mask;
  if (sigaction(sig, &sa, NULL) != 0) say("sigaction(%d) failed: %s\n", sig, strerror(errno));
}

static void catcher(int sig, siginfo_t *si, void *uc) {
  (void)uc;
  last_sig = sig;
  last_code = si->si_code;
  last_addr = (uintptr_t)si->si_addr;
  siglongjmp(env, 1);
}

static void counter(int sig, siginfo_t *si, void *uc) {
  (void)uc;
  hits++;
  last_sig = sig;
  last_code = si->si_code;
  handler_mask = blocked_now();
  handler_sp = (uintptr_t)&sig;
}

extern char fault_ud2[], fault_int3[], fault_div[];

static void faults(void) {
  on(SIGSEGV, catcher, 0, NULL);
  on(SIGILL, catcher, 0, NULL);
  on(SIGFPE, catcher, 0, NULL);
  on(SIGTRAP, catcher, 0, NULL);
  if (!sigsetjmp(env, 1)) (void)*(volatile int *)0x10;
  say("read of 0x10: sig %d code %d addr %#lx\n", last_sig, last_code, (unsigned long)last_addr);
  static const char rodata[] = "constant";
  if (!sigsetjmp(env, 1)) *(volatile char *)rodata = 'x';
  say("write to rodata: sig %d code %d addr is rodata: %d\n", last_sig, last_code, last_addr == (uintptr_t)rodata);
  if (!sigsetjmp(env, 1)) __asm__ volatile("fault_ud2: ud2");
  say("ud2: sig %d code %d addr is the instruction: %d\n", last_sig, last_code, last_addr == (uintptr_t)fault_ud2);
  if (!sigsetjmp(env, 1)) __asm__ volatile("fault_int3: int3");
  say("int3: sig %d code %d\n", last_sig, last_code);
  if (!sigsetjmp(env, 1)) __asm__ volatile("xor %%edx, %%edx; mov $1, %%eax; xor %%ecx, %%ecx; fault_div: div %%ecx" ::: "eax", "ecx", "edx");
  say("divide by zero: sig %d code %d addr is the instruction: %d\n", last_sig, last_code, last_addr == (uintptr_t)fault_div);
  // A non-canonical address is a #GP: SIGSEGV from the kernel, no address.
  if (!sigsetjmp(env, 1)) (void)*(volatile int *)0x8000000000000000UL;
  say("non-canonical read: sig %d code %d addr %#lx\n", last_sig, last_code, (unsigned long)last_addr);
  // SIMD and x87 exceptions, once unmasked: SIGFPE with the code of the exception (the handler
  // starts with the initial FPU state, and siglongjmp leaves it so: nothing to unmask again).
  on(SIGFPE, catcher, 0, NULL);
  if (!sigsetjmp(env, 1)) {
    unsigned mxcsr = 0x1f80 & ~0x200u;  // divide-by-zero unmasked
    volatile double zero = 0.0;
    __asm__ volatile("ldmxcsr %0" :: "m"(mxcsr));
    volatile double r = 1.0 / zero;
    (void)r;
  }
  say("SSE division by zero: sig %d code %d (FPE_FLTDIV %d)\n", last_sig, last_code, FPE_FLTDIV);
  if (!sigsetjmp(env, 1)) {
    unsigned short fcw = 0x37f & ~0x4;  // x87 divide-by-zero unmasked
    __asm__ volatile("fldcw %0; fld1; fldz; fdivrp; fwait; fstp %%st(0)" :: "m"(fcw));
  }
  say("x87 division by zero: sig %d code %d\n", last_sig, last_code);
  // Alignment checking (RFLAGS.AC): a misaligned read is SIGBUS, BUS_ADRALN.
  on(SIGBUS, catcher, 0, NULL);
  if (!sigsetjmp(env, 1)) {
    static char buf[16] __attribute__((aligned(16)));
    __asm__ volatile("pushfq; orq $0x40000, (%%rsp); popfq; movl 1(%0), %%eax; pushfq; andq $~0x40000, (%%rsp); popfq" :: "r"(buf) : "eax", "memory");
  }
  __asm__ volatile("pushfq; andq $~0x40000, (%%rsp); popfq" ::: "memory");
  say("misaligned read with AC set: sig %d code %d\n", last_sig, last_code);
  // Blocked, a fault's signal still ends the program (tested by `overflow` with no alternate stack).
  signal(SIGBUS, SIG_DFL);
  signal(SIGSEGV, SIG_DFL);
  signal(SIGILL, SIG_DFL);
  signal(SIGFPE, SIG_DFL);
  signal(SIGTRAP, SIG_DFL);
}

static void raising(void) {
  hits = 0;
  on(SIGUSR1, counter, 0, NULL);
  raise(SIGUSR1);
  say("raise(SIGUSR1): hits %d sig %d code %d (SI_TKILL %d)\n", hits, last_sig, last_code, SI_TKILL);
  kill(getpid(), SIGUSR1);
  say("kill(getpid(), SIGUSR1): hits %d code %d (SI_USER %d)\n", hits, last_code, SI_USER);
  say("mask in the handler: USR1 %d USR2 %d\n", (int)((handler_mask >> (SIGUSR1 - 1)) & 1), (int)((handler_mask >> (SIGUSR2 - 1)) & 1));
  say("mask after the handler: USR1 %d\n", (int)((blocked_now() >> (SIGUSR1 - 1)) & 1));

  signal(SIGUSR1, SIG_IGN);
  raise(SIGUSR1);
  say("SIG_IGN then raise: still here, hits %d\n", hits);

  sigset_t extra;
  sigemptyset(&extra);
  sigaddset(&extra, SIGUSR2);
  sigaddset(&extra, SIGKILL);
  on(SIGUSR1, counter, SA_NODEFER, &extra);
  raise(SIGUSR1);
  say("SA_NODEFER, sa_mask USR2+KILL: hits %d USR1 blocked %d USR2 blocked %d KILL blocked %d\n", hits,
      (int)((handler_mask >> (SIGUSR1 - 1)) & 1), (int)((handler_mask >> (SIGUSR2 - 1)) & 1), (int)((handler_mask >> (SIGKILL - 1)) & 1));
  struct sigaction old;
  sigaction(SIGUSR1, NULL, &old);
  say("sigaction reads back: handler ok %d flags %#x USR2 in mask %d KILL in mask %d\n", old.sa_sigaction == counter,
      old.sa_flags & ~SA_RESTORER, sigismember(&old.sa_mask, SIGUSR2), sigismember(&old.sa_mask, SIGKILL));
}

static void masking(void) {
  hits = 0;
  on(SIGUSR2, counter, 0, NULL);
  sigset_t s, pending;
  sigemptyset(&s);
  sigaddset(&s, SIGUSR2);
  sigprocmask(SIG_BLOCK, &s, NULL);
  raise(SIGUSR2);
  raise(SIGUSR2);
  sigpending(&pending);
  say("blocked raise: hits %d pending USR2 %d\n", hits, sigismember(&pending, SIGUSR2));
  sigprocmask(SIG_UNBLOCK, &s, NULL);
  say("after unblock: hits %d (a standard signal is pending once)\n", hits);

  // Real-time signals queue: three raised while blocked, three deliveries.
  int rt = SIGRTMIN + 2;
  on(rt, counter, 0, NULL);
  sigemptyset(&s);
  sigaddset(&s, rt);
  hits = 0;
  sigprocmask(SIG_BLOCK, &s, NULL);
  raise(rt);
  raise(rt);
  raise(rt);
  sigprocmask(SIG_UNBLOCK, &s, NULL);
  say("real-time signal raised 3 times while blocked: hits %d\n", hits);

  // sigsuspend: the pending signal runs its handler, the call returns EINTR, the mask comes back.
  hits = 0;
  sigemptyset(&s);
  sigaddset(&s, SIGUSR2);
  sigprocmask(SIG_BLOCK, &s, NULL);
  raise(SIGUSR2);
  sigset_t none;
  sigemptyset(&none);
  int r = sigsuspend(&none);
  say("sigsuspend: %d %s hits %d USR2 blocked again %d\n", r, strerror(errno), hits, (int)((blocked_now() >> (SIGUSR2 - 1)) & 1));
  sigprocmask(SIG_UNBLOCK, &s, NULL);

  // SA_RESETHAND: the first delivery puts SIG_DFL back (SIGURG's default is to be ignored).
  hits = 0;
  on(SIGURG, counter, SA_RESETHAND, NULL);
  raise(SIGURG);
  raise(SIGURG);
  struct sigaction old;
  sigaction(SIGURG, NULL, &old);
  say("SA_RESETHAND: hits %d handler now SIG_DFL %d\n", hits, old.sa_handler == SIG_DFL);

  unsigned long raw = 0;
  long n = syscall(SYS_rt_sigpending, &raw, 9);
  say("rt_sigpending with size 9: %ld %s\n", n, strerror(errno));
}

static volatile int nested_inner;
static void inner(int sig, siginfo_t *si, void *uc) {
  (void)sig; (void)si; (void)uc;
  nested_inner++;
}
static void outer(int sig, siginfo_t *si, void *uc) {
  (void)sig; (void)si; (void)uc;
  raise(SIGUSR2);
  say("outer handler: inner ran %d\n", nested_inner);
}

static void alternate(void) {
  stack_t ss = { .ss_sp = alt, .ss_size = 1000, .ss_flags = 0 };
  int r = sigaltstack(&ss, NULL);
  say("sigaltstack of 1000 bytes: %d %s\n", r, strerror(errno));
  ss.ss_size = sizeof alt;
  ss.ss_flags = 5;
  r = sigaltstack(&ss, NULL);
  say("sigaltstack with flags 5: %d %s\n", r, strerror(errno));
  ss.ss_flags = 0;
  say("sigaltstack: %d\n", sigaltstack(&ss, NULL));
  hits = 0;
  on(SIGUSR1, counter, SA_ONSTACK, NULL);
  raise(SIGUSR1);
  say("SA_ONSTACK: hits %d on the alternate stack %d\n", hits, handler_sp > (uintptr_t)alt && handler_sp <= (uintptr_t)alt + sizeof alt);
  on(SIGUSR1, counter, 0, NULL);
  raise(SIGUSR1);
  say("without SA_ONSTACK: on the alternate stack %d\n", handler_sp > (uintptr_t)alt && handler_sp <= (uintptr_t)alt + sizeof alt);
  ss.ss_flags = SS_AUTODISARM;
  sigaltstack(&ss, NULL);
  on(SIGUSR1, counter, SA_ONSTACK, NULL);
  raise(SIGUSR1);
  stack_t now;
  sigaltstack(NULL, &now);
  say("SS_AUTODISARM: on the alternate stack %d; after the handler flags %#x size %zu\n",
      handler_sp > (uintptr_t)alt && handler_sp <= (uintptr_t)alt + sizeof alt, now.ss_flags, now.ss_size);

  nested_inner = 0;
  on(SIGUSR1, outer, 0, NULL);
  on(SIGUSR2, inner, 0, NULL);
  raise(SIGUSR1);
  say("nested: inner ran %d\n", nested_inner);
}

// --- threads ------------------------------------------------------------------------------------

static volatile pid_t handler_tid, started_tid;
static volatile int thread_hits, phase;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;

static void where(int sig) {
  (void)sig;
  handler_tid = gettid();
  thread_hits++;
}

/** Waits on a condition variable (a futex wait) until `phase` reaches `until`. */
static void *waiter(void *arg) {
  int until = (int)(intptr_t)arg;
  // A new thread starts with its creator's mask: the main thread may block SIGUSR1.
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGUSR1);
  pthread_sigmask(SIG_UNBLOCK, &s, NULL);
  pthread_mutex_lock(&lock);
  started_tid = gettid();
  pthread_cond_broadcast(&changed);
  while (phase < until) pthread_cond_wait(&changed, &lock);
  pthread_mutex_unlock(&lock);
  return NULL;
}

static void *spinner(void *arg) {
  (void)arg;
  started_tid = gettid();
  while (phase < 2) {}
  return NULL;
}

static pthread_t start(void *(*fn)(void *), int until) {
  pthread_t t;
  started_tid = 0;
  pthread_create(&t, NULL, fn, (void *)(intptr_t)until);
  while (started_tid == 0) sched_yield();
  // The waiter holds the lock until its wait begins: taking it here means it waits now.
  pthread_mutex_lock(&lock);
  pthread_mutex_unlock(&lock);
  return t;
}

static void set_phase(int p) {
  pthread_mutex_lock(&lock);
  phase = p;
  pthread_cond_broadcast(&changed);
  pthread_mutex_unlock(&lock);
}

static void threads(void) {
  signal(SIGUSR1, where);
  thread_hits = 0;
  phase = 0;
  pthread_t t = start(waiter, 1);
  pid_t tid = started_tid;
  pthread_kill(t, SIGUSR1);
  while (thread_hits < 1) sched_yield();
  say("pthread_kill to a thread in pthread_cond_wait: its handler ran in it %d\n", handler_tid == tid);
  set_phase(1);
  pthread_join(t, NULL);

  t = start(spinner, 0);
  tid = started_tid;
  pthread_kill(t, SIGUSR1);
  while (thread_hits < 2) sched_yield();
  say("pthread_kill to a thread spinning without calls: its handler ran in it %d\n", handler_tid == tid);
  set_phase(2);
  pthread_join(t, NULL);

  // A signal to the process that the main thread blocks goes to a thread that does not.
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &s, NULL);
  t = start(waiter, 3);
  tid = started_tid;
  kill(getpid(), SIGUSR1);
  while (thread_hits < 3) sched_yield();
  say("kill() while the main thread blocks it: the handler ran in the other thread %d\n", handler_tid == tid);
  set_phase(3);
  pthread_join(t, NULL);
  pthread_sigmask(SIG_UNBLOCK, &s, NULL);
}

// --- the FPU state ------------------------------------------------------------------------------

static void change_xmm0(int sig, siginfo_t *si, void *ucv) {
  (void)sig; (void)si;
  ucontext_t *uc = ucv;
  uc->uc_mcontext.fpregs->_xmm[0].element[0] = 0x600df00d;
  uc->uc_mcontext.fpregs->mxcsr |= 0x6000;  // round toward zero
  // Clobber every vector register the handler can reach: the frame must restore them.
  __asm__ volatile("pxor %%xmm0, %%xmm0; pxor %%xmm1, %%xmm1; pxor %%xmm7, %%xmm7; pxor %%xmm15, %%xmm15" ::: "xmm0", "xmm1", "xmm7", "xmm15");
}

static void clobber(int sig, siginfo_t *si, void *ucv) {
  (void)sig; (void)si;
  ucontext_t *uc = ucv;
  hits = uc->uc_flags;  // UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS
  handler_mask = ((uint32_t *)uc->uc_mcontext.fpregs)[116];  // fpx_sw_bytes.magic1
  __asm__ volatile("pcmpeqd %%xmm0, %%xmm0; pcmpeqd %%xmm1, %%xmm1; pcmpeqd %%xmm7, %%xmm7; pcmpeqd %%xmm15, %%xmm15" ::: "xmm0", "xmm1", "xmm7", "xmm15");
  if (__builtin_cpu_supports("avx")) __asm__ volatile("vpcmpeqd %%ymm2, %%ymm2, %%ymm2; vpcmpeqd %%ymm9, %%ymm9, %%ymm9" ::: "xmm2", "xmm9");
}

/** tgkill to itself with xmm0/xmm1/xmm7/xmm15 (and ymm2/ymm9 upper halves with AVX) loaded, then reads them back. */
static void raise_with_vectors(uint64_t out[8], int avx) {
  static const uint64_t pattern[4] = { 0x1111111122222222, 0x3333333344444444, 0x5555555566666666, 0x7777777788888888 };
  long pid = getpid(), tid = gettid();
  if (avx) {
    __asm__ volatile(
        "vmovdqu (%[p]), %%ymm2; vmovdqu (%[p]), %%ymm9\n"
        "syscall\n"
        "vextracti128 $1, %%ymm2, (%[o]); vextracti128 $1, %%ymm9, 16(%[o])\n"
        : "+a"(*(long[]){SYS_tgkill}) : [p] "r"(pattern), [o] "r"(out + 4), "D"(pid), "S"(tid), "d"(SIGUSR1)
        : "rcx", "r11", "memory", "xmm2", "xmm9");
  }
  __asm__ volatile(
      "movdqu (%[p]), %%xmm0; movdqu 16(%[p]), %%xmm1; movdqu (%[p]), %%xmm7; movdqu 16(%[p]), %%xmm15\n"
      "syscall\n"
      "movq %%xmm0, 0(%[o]); movq %%xmm1, 8(%[o]); movq %%xmm7, 16(%[o]); movq %%xmm15, 24(%[o])\n"
      : "+a"(*(long[]){SYS_tgkill}) : [p] "r"(pattern), [o] "r"(out), "D"(pid), "S"(tid), "d"(SIGUSR1)
      : "rcx", "r11", "memory", "xmm0", "xmm1", "xmm7", "xmm15");
}

static void fpu(void) {
  uint64_t out[8] = {0};
  int avx = __builtin_cpu_supports("avx");
  on(SIGUSR1, clobber, 0, NULL);
  raise_with_vectors(out, avx);
  say("vectors kept across a clobbering handler: %d %d %d %d; uc_flags %#x magic1 %#lx\n",
      out[0] == 0x1111111122222222, out[1] == 0x5555555566666666, out[2] == 0x1111111122222222, out[3] == 0x5555555566666666,
      hits, (unsigned long)handler_mask);
  if (avx) say("upper halves kept: %d %d\n", out[4] == 0x5555555566666666 && out[5] == 0x7777777788888888, out[6] == 0x5555555566666666);
  else say("upper halves kept: 1 1\n");

  on(SIGUSR1, change_xmm0, 0, NULL);
  memset(out, 0, sizeof out);
  raise_with_vectors(out, 0);
  unsigned mxcsr;
  __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
  say("xmm0 changed in the frame: %#lx; xmm1 kept %d; MXCSR rounding %#x\n", (unsigned long)(out[0] & 0xffffffff), out[1] == 0x5555555566666666, mxcsr & 0x6000);
  mxcsr &= ~0x6000u;
  __asm__ volatile("ldmxcsr %0" :: "m"(mxcsr));
}

// --- endings --------------------------------------------------------------------------------------

static unsigned long recurse(unsigned long depth);
static unsigned long (*volatile next)(unsigned long) = recurse;
static unsigned long recurse(unsigned long depth) {
  volatile char frame[1024];
  memset((char *)frame, (int)depth, sizeof frame);
  return next(depth + 1) + frame[depth % sizeof frame];
}

static void overflowed(int sig, siginfo_t *si, void *uc) {
  (void)uc;
  say("stack overflow caught on the alternate stack: sig %d code %d\n", sig, si->si_code);
  _exit(3);
}

static void returning(int sig) {
  (void)sig;
}

static void aborting(int sig) {
  say("SIGABRT handler ran (sig %d); returning\n", sig);
}

int main(int argc, char **argv) {
  const char *what = argc > 1 ? argv[1] : "all";
  if (strcmp(what, "overflow") == 0) {
    stack_t ss = { .ss_sp = alt, .ss_size = sizeof alt, .ss_flags = 0 };
    sigaltstack(&ss, NULL);
    on(SIGSEGV, overflowed, SA_ONSTACK, NULL);
    say("recursing\n");
    return (int)next(0);
  }
  if (strcmp(what, "overflow-no-altstack") == 0) {
    on(SIGSEGV, overflowed, 0, NULL);
    say("recursing without an alternate stack\n");
    return (int)next(0);
  }
  if (strcmp(what, "segv-loop") == 0) {
    signal(SIGSEGV, returning);
    say("reading 0x10 under a handler that returns\n");
    return *(volatile int *)0x10;
  }
  if (strcmp(what, "abort") == 0) {
    signal(SIGABRT, aborting);
    abort();
  }
  faults();
  raising();
  masking();
  alternate();
  fpu();
  threads();
  say("done\n");
  return 0;
}
