// Forged rt_sigreturn frames and handlers that cannot run. A real frame is captured in a SIGUSR1
// handler, then copies of it are changed one way each and handed to rt_sigreturn: each must land
// (at a stub that records RFLAGS, xmm0, MXCSR and the mask) or raise what Linux raises for it — a
// SIGSEGV or SIGBUS whose handler, on an alternate stack, reports si_code and siglongjmps back.
// Never ring 0, never a host exception. Output is the same natively and under tinyedge. The last
// case leaves no way to deliver SIGSEGV (its alternate stack is read-only): the program ends with it.
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef SA_RESTORER
#define SA_RESTORER 0x04000000
#endif
/** RFLAGS bits a frame may set (the kernel's FIX_EFLAGS). */
#define FIX_EFLAGS 0x50dd5UL
#define TF 0x100UL
#define AC 0x40000UL

struct kernel_sigaction {
  void *handler;
  unsigned long flags;
  void *restorer;
  unsigned long mask;
};

static sigjmp_buf env;
static volatile int got_sig, got_code;
static volatile uintptr_t got_addr;
static ucontext_t saved;
static unsigned char saved_fp[8192] __attribute__((aligned(64)));
static unsigned char work_fp[8192 + 64] __attribute__((aligned(64)));
static char landing_stack[65536] __attribute__((aligned(16)));
static char alt[65536] __attribute__((aligned(16)));
static char frame[8 + sizeof(ucontext_t) + 256] __attribute__((aligned(16)));
unsigned long flags_seen, flags_before, xmm0_seen, mask_seen;
unsigned mxcsr_seen;

static void say(const char *s) {
  fputs(s, stdout);
  fflush(stdout);
}

static void fault(int sig, siginfo_t *si, void *uc) {
  (void)uc;
  got_sig = sig;
  got_code = si->si_code;
  got_addr = (uintptr_t)si->si_addr;
  siglongjmp(env, 1);
}

static void capture(int sig, siginfo_t *si, void *ucv) {
  (void)sig; (void)si;
  ucontext_t *uc = ucv;
  memcpy(&saved, uc, sizeof saved);
  uint32_t extended = ((uint32_t *)uc->uc_mcontext.fpregs)[117];
  memcpy(saved_fp, uc->uc_mcontext.fpregs, extended < sizeof saved_fp ? extended : sizeof saved_fp);
}

static void landed(void) {
  siglongjmp(env, 2);
}

// Where a forged frame returns: records RFLAGS first (before anything changes them), clears DF,
// records xmm0, MXCSR and the blocked mask (rt_sigprocmask), then goes back to main through siglongjmp.
void landing_stub(void);
__asm__(".globl landing_stub\n"
        "landing_stub:\n"
        "  pushfq\n"
        "  popq flags_seen(%rip)\n"
        "  cld\n"
        "  movq %xmm0, xmm0_seen(%rip)\n"
        "  stmxcsr mxcsr_seen(%rip)\n"
        "  mov $14, %eax\n"
        "  xor %edi, %edi\n"
        "  xor %esi, %esi\n"
        "  lea mask_seen(%rip), %rdx\n"
        "  mov $8, %r10d\n"
        "  syscall\n"
        "  andq $-16, %rsp\n"
        "  call landed\n");

/** rt_sigreturn with `uc` (and its XSAVE area at `fp`) as the frame. */
static void sigreturn_with(const ucontext_t *uc, void *fp) {
  memset(frame, 0, sizeof frame);
  memcpy(frame + 8, uc, sizeof *uc);
  ((ucontext_t *)(frame + 8))->uc_mcontext.fpregs = fp;
  unsigned long flags;
  __asm__ volatile("pushfq; popq %0" : "=r"(flags));
  flags_before = flags;
  __asm__ volatile("mov %0, %%rsp; mov $15, %%eax; syscall" :: "r"(frame + 8) : "memory");
}

static ucontext_t base(void) {
  ucontext_t u = saved;
  u.uc_mcontext.gregs[REG_RIP] = (long)landing_stub;
  u.uc_mcontext.gregs[REG_RSP] = (long)(landing_stack + sizeof landing_stack - 64);
  return u;
}

/** The captured XSAVE area, copied to `work_fp + offset`. */
static unsigned char *fp_copy(size_t offset) {
  memcpy(work_fp + offset, saved_fp, sizeof saved_fp);
  return work_fp + offset;
}

static void report(const char *name, int r) {
  char line[300];
  if (r == 1) snprintf(line, sizeof line, "%s: signal %d code %d addr %#lx\n", name, got_sig, got_code, (unsigned long)got_addr);
  else snprintf(line, sizeof line, "%s: landed, xmm0 %#lx mxcsr %#x\n", name, xmm0_seen, mxcsr_seen);
  say(line);
}

#define CASE(name, setup)                          \
  do {                                             \
    int r_ = sigsetjmp(env, 1);                    \
    if (r_ == 0) {                                 \
      ucontext_t u = base();                       \
      unsigned char *fp = fp_copy(0);              \
      setup;                                       \
      sigreturn_with(&u, fp);                      \
    }                                              \
    report(name, r_);                              \
  } while (0)

static void raw_action(int sig, void *handler, unsigned long flags) {
  struct kernel_sigaction k = { handler, flags, NULL, 0 };
  syscall(SYS_rt_sigaction, sig, &k, NULL, 8);
}

int main(void) {
  stack_t ss = { .ss_sp = alt, .ss_size = sizeof alt, .ss_flags = 0 };
  sigaltstack(&ss, NULL);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigaction(SIGSEGV, &sa, NULL);
  sigaction(SIGBUS, &sa, NULL);
  sa.sa_sigaction = capture;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGUSR1, &sa, NULL);
  __asm__ volatile("mov $0x1234, %%eax; movq %%rax, %%xmm0" ::: "rax", "xmm0");
  raise(SIGUSR1);
  // Every case starts from xmm0 as the capture saw it: make it recognisable.
  ((uint64_t *)(saved_fp + 160))[0] = 0xabcdef;

  CASE("the captured frame", (void)0);
  {
    int r = sigsetjmp(env, 1);
    if (r == 0) __asm__ volatile("mov $0x18, %%rsp; mov $15, %%eax; syscall" ::: "memory");
    report("frame unreadable", r);
  }
  {
    int r = sigsetjmp(env, 1);
    if (r == 0) __asm__ volatile("mov $0x7ffffffff000, %%rsp; mov $15, %%eax; syscall" ::: "memory");
    report("frame past the user address space", r);
  }
  CASE("non-canonical rip", u.uc_mcontext.gregs[REG_RIP] = (long)0x8000000000000000UL);
  CASE("kernel rip", u.uc_mcontext.gregs[REG_RIP] = (long)0xffff800000000000UL);
  CASE("non-canonical rsp", u.uc_mcontext.gregs[REG_RSP] = (long)0x8000000000000000UL);
  CASE("kernel rsp", u.uc_mcontext.gregs[REG_RSP] = (long)0xffff800000000000UL);
  CASE("kernel code segment", u.uc_mcontext.gregs[REG_CSGSFS] = 0x08);
  CASE("null stack segment, strict", u.uc_mcontext.gregs[REG_CSGSFS] &= 0x0000ffffffffffffL);
  CASE("null stack segment, not strict", { u.uc_mcontext.gregs[REG_CSGSFS] &= 0x0000ffffffffffffL; u.uc_flags &= ~4UL; });
  {
    int r = sigsetjmp(env, 1);
    if (r == 0) {
      ucontext_t u = base();
      u.uc_mcontext.gregs[REG_EFL] = (long)(~0UL & ~TF & ~AC);
      sigreturn_with(&u, fp_copy(0));
    }
    char line[200];
    snprintf(line, sizeof line, "rflags all ones but TF and AC: landed %d, frame bits %#lx, other bits kept %d\n", r == 2,
             flags_seen & FIX_EFLAGS, (flags_seen & ~FIX_EFLAGS) == (flags_before & ~FIX_EFLAGS));
    say(line);
  }
  CASE("no FPU state", fp = NULL);
  CASE("FPU state unreadable", fp = (unsigned char *)0x1000);
  CASE("FPU state 16-byte aligned", { fp = fp_copy(16); });
  CASE("XSTATE_BV beyond XCR0", ((uint64_t *)(fp + 512))[0] |= 1UL << 62);
  CASE("XCOMP_BV set", ((uint64_t *)(fp + 520))[0] = 1);
  CASE("header reserved bytes set", ((uint64_t *)(fp + 528))[0] = 1);
  CASE("MXCSR reserved bit", ((uint32_t *)(fp + 24))[0] |= 1U << 20);
  CASE("MXCSR rounding set", ((uint32_t *)(fp + 24))[0] |= 0x6000);
  CASE("magic1 wrong: legacy area only", { ((uint32_t *)(fp + 464))[0] = 0; ((uint32_t *)(fp + 24))[0] |= 0x6000; });
  CASE("magic2 wrong: legacy area only", { ((uint32_t *)(fp + ((uint32_t *)(fp + 464))[4]))[0] = 0; });
  CASE("xstate_size too large: legacy area only", ((uint32_t *)(fp + 464))[4] = 1 << 20);
  CASE("xfeatures FP and SSE only", { ((uint64_t *)(fp + 464))[1] = 3; ((uint32_t *)(fp + 24))[0] |= 0x6000; });
  CASE("legacy area only, 8-byte aligned", { fp = fp_copy(8); ((uint32_t *)(fp + 464))[0] = 0; });
  {
    int r = sigsetjmp(env, 1);
    if (r == 0) {
      ucontext_t u = base();
      memset(&u.uc_sigmask, 0xff, sizeof u.uc_sigmask);
      sigreturn_with(&u, fp_copy(0));
    }
    char line[200];
    snprintf(line, sizeof line, "mask of all signals: landed %d, KILL %lu STOP %lu USR1 %lu RTMAX %lu\n", r == 2,
             (mask_seen >> (SIGKILL - 1)) & 1, (mask_seen >> (SIGSTOP - 1)) & 1, (mask_seen >> (SIGUSR1 - 1)) & 1, mask_seen >> 63);
    say(line);
  }
  CASE("alternate stack with bad flags in the frame", u.uc_stack.ss_flags = 7);
  {
    stack_t now;
    sigaltstack(NULL, &now);
    char line[200];
    snprintf(line, sizeof line, "alternate stack after: flags %d same %d\n", now.ss_flags, now.ss_sp == alt && now.ss_size == sizeof alt);
    say(line);
  }

  // Handlers that cannot run: the kernel forces SIGSEGV instead.
  {
    int r = sigsetjmp(env, 1);
    if (r == 0) {
      raw_action(SIGUSR2, (void *)landed, SA_SIGINFO);
      raise(SIGUSR2);
    }
    report("handler without SA_RESTORER", r);
  }
  {
    int r = sigsetjmp(env, 1);
    if (r == 0) {
      signal(SIGUSR2, (void (*)(int))0x8000000000000000UL);
      raise(SIGUSR2);
    }
    report("non-canonical handler", r);
  }
  {
    int r = sigsetjmp(env, 1);
    if (r == 0) {
      signal(SIGUSR2, (void (*)(int))0xffff800000000000UL);
      raise(SIGUSR2);
    }
    report("kernel handler", r);
  }
  // Last: an alternate stack the program cannot write, for SIGUSR2 and for SIGSEGV alike.
  static const char read_only[65536] __attribute__((aligned(4096))) = { 1 };
  ss.ss_sp = (void *)read_only;
  sigaltstack(&ss, NULL);
  sa.sa_sigaction = fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigaction(SIGUSR2, &sa, NULL);
  say("a frame on a read-only alternate stack\n");
  raise(SIGUSR2);
  say("still running\n");
  return 0;
}
