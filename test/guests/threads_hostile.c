/* Hostile and odd thread system calls, each answer printed so it can be compared with what Linux
 * answers natively: bad and unaligned futex words, unknown operations and flags, bad timeouts,
 * negative requeue counts, clone and clone3 with flags and sizes the kernel refuses, robust-list
 * calls with bad lengths and ids, signals to threads that do not exist. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
/* From linux/futex.h and linux/sched.h, which musl's toolchain lacks. */
#define FUTEX_WAIT 0
#define FUTEX_WAKE 1
#define FUTEX_REQUEUE 3
#define FUTEX_CMP_REQUEUE 4
#define FUTEX_WAKE_OP 5
#define FUTEX_WAIT_BITSET 9
#define FUTEX_WAKE_BITSET 10
#define FUTEX_PRIVATE_FLAG 128
#define FUTEX_CLOCK_REALTIME 256
#define FUTEX_WAIT_PRIVATE (FUTEX_WAIT | FUTEX_PRIVATE_FLAG)
#define FUTEX_WAKE_PRIVATE (FUTEX_WAKE | FUTEX_PRIVATE_FLAG)
#define FUTEX_BITSET_MATCH_ANY 0xffffffffu
#define FUTEX_OP_SET 0
#define FUTEX_OP_ADD 1
#define FUTEX_OP_OPARG_SHIFT 8
#define FUTEX_OP_CMP_EQ 0
#define FUTEX_OP(op, oparg, cmp, cmparg) ((((op) & 0xf) << 28) | (((cmp) & 0xf) << 24) | (((oparg) & 0xfff) << 12) | ((cmparg) & 0xfff))
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x1000
#endif

/* The errno names the answers use (strerrorname_np is glibc's only). */
static const char *errname(int e) {
    switch (e) {
    case EPERM: return "EPERM"; case ESRCH: return "ESRCH"; case E2BIG: return "E2BIG"; case EAGAIN: return "EAGAIN";
    case EFAULT: return "EFAULT"; case EINVAL: return "EINVAL"; case ENOSYS: return "ENOSYS"; case ETIMEDOUT: return "ETIMEDOUT";
    default: return "other";
    }
}

static void show(const char *what, long rc) {
    if (rc < 0) printf("%-44s = -1 %s\n", what, errname(errno));
    else printf("%-44s = %ld\n", what, rc);
}

static long futex(void *uaddr, int op, uint32_t val, const void *timeout, void *uaddr2, uint32_t val3) {
    return syscall(SYS_futex, uaddr, op, val, timeout, uaddr2, val3);
}

static uint32_t word = 7, word2 = 9;
static uint32_t pair[2];

int main(void) {
    void *null_page = (void *)0x10;
    void *kernel = (void *)0xffff800000000000ul;
    char *unaligned = (char *)pair + 1;
    struct timespec bad_nsec = { 0, 1000000000 }, negative = { -1, 0 }, zero = { 0, 0 }, short_wait = { 0, 1000000 };
    struct timespec past = { 1, 0 };

    show("futex WAIT on a NULL-page word", futex(null_page, FUTEX_WAIT, 0, NULL, NULL, 0));
    show("futex WAIT_PRIVATE on a NULL-page word", futex(null_page, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0));
    show("futex WAKE on a NULL-page word", futex(null_page, FUTEX_WAKE, 1, NULL, NULL, 0));
    show("futex WAKE_PRIVATE on a NULL-page word", futex(null_page, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0));
    show("futex WAKE_PRIVATE on a kernel address", futex(kernel, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0));
    show("futex WAIT on an unaligned word", futex(unaligned, FUTEX_WAIT, 0, NULL, NULL, 0));
    show("futex WAKE on an unaligned word", futex(unaligned, FUTEX_WAKE, 1, NULL, NULL, 0));
    show("futex op 99", futex(&word, 99, 0, NULL, NULL, 0));
    show("futex op 0x7f", futex(&word, 0x7f, 0, NULL, NULL, 0));
    show("futex WAIT | CLOCK_REALTIME", futex(&word, FUTEX_WAIT | FUTEX_CLOCK_REALTIME, 7, &short_wait, NULL, 0));
    show("futex WAKE | CLOCK_REALTIME", futex(&word, FUTEX_WAKE | FUTEX_CLOCK_REALTIME, 1, NULL, NULL, 0));
    show("futex WAIT, value differs", futex(&word, FUTEX_WAIT, 8, NULL, NULL, 0));
    show("futex WAIT, timeout nsec = 1e9", futex(&word, FUTEX_WAIT, 7, &bad_nsec, NULL, 0));
    show("futex WAIT, negative timeout", futex(&word, FUTEX_WAIT, 7, &negative, NULL, 0));
    show("futex WAIT, timeout at a NULL-page address", futex(&word, FUTEX_WAIT, 7, null_page, NULL, 0));
    show("futex WAIT, zero timeout", futex(&word, FUTEX_WAIT, 7, &zero, NULL, 0));
    show("futex WAIT, 1 ms timeout", futex(&word, FUTEX_WAIT_PRIVATE, 7, &short_wait, NULL, 0));
    show("futex WAIT_BITSET, absolute time in the past", futex(&word, FUTEX_WAIT_BITSET, 7, &past, NULL, FUTEX_BITSET_MATCH_ANY));
    show("futex WAIT_BITSET | CLOCK_REALTIME, past", futex(&word, FUTEX_WAIT_BITSET | FUTEX_CLOCK_REALTIME, 7, &past, NULL, FUTEX_BITSET_MATCH_ANY));
    show("futex WAIT_BITSET, bitset 0", futex(&word, FUTEX_WAIT_BITSET, 7, NULL, NULL, 0));
    show("futex WAKE_BITSET, bitset 0", futex(&word, FUTEX_WAKE_BITSET, 1, NULL, NULL, 0));
    show("futex WAKE, nobody waits", futex(&word, FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0));
    show("futex REQUEUE, nr_wake -1", futex(&word, FUTEX_REQUEUE, (uint32_t)-1, (void *)1, &word2, 0));
    show("futex REQUEUE, nr_requeue -1", futex(&word, FUTEX_REQUEUE, 1, (void *)0xffffffffu, &word2, 0));
    show("futex REQUEUE to an unaligned word", futex(&word, FUTEX_REQUEUE, 1, (void *)1, unaligned, 0));
    show("futex REQUEUE to a NULL-page word", futex(&word, FUTEX_REQUEUE, 1, (void *)1, null_page, 0));
    show("futex CMP_REQUEUE, value differs", futex(&word, FUTEX_CMP_REQUEUE, 1, (void *)1, &word2, 8));
    show("futex CMP_REQUEUE, value matches", futex(&word, FUTEX_CMP_REQUEUE, 1, (void *)1, &word2, 7));
    show("futex WAKE_OP, set word2 to 5, cmp eq 9", futex(&word, FUTEX_WAKE_OP, 1, (void *)1, &word2, FUTEX_OP(FUTEX_OP_SET, 5, FUTEX_OP_CMP_EQ, 9)));
    printf("word2 is now %u\n", word2);
    show("futex WAKE_OP, add 1 << 3, cmp 9 (unknown)", futex(&word, FUTEX_WAKE_OP, 1, (void *)1, &word2, FUTEX_OP(FUTEX_OP_ADD | FUTEX_OP_OPARG_SHIFT, 3, 9, 0)));
    printf("word2 is now %u\n", word2);
    show("futex WAKE_OP, op 7 (unknown)", futex(&word, FUTEX_WAKE_OP, 1, (void *)1, &word2, FUTEX_OP(7, 3, FUTEX_OP_CMP_EQ, 0)));
    printf("word2 is now %u\n", word2);
    show("futex WAKE_OP on a NULL-page word2", futex(&word, FUTEX_WAKE_OP, 1, (void *)1, null_page, 0));

    show("clone CLONE_THREAD without CLONE_SIGHAND", syscall(SYS_clone, CLONE_THREAD | CLONE_VM, 0, 0, 0, 0));
    show("clone CLONE_SIGHAND without CLONE_VM", syscall(SYS_clone, CLONE_SIGHAND, 0, 0, 0, 0));
    show("clone CLONE_NEWNS | CLONE_FS", syscall(SYS_clone, CLONE_NEWNS | CLONE_FS, 0, 0, 0, 0));
    show("clone thread with CLONE_NEWPID", syscall(SYS_clone, CLONE_THREAD | CLONE_SIGHAND | CLONE_VM | CLONE_NEWPID, 0, 0, 0, 0));
    show("clone CLONE_PIDFD | CLONE_DETACHED", syscall(SYS_clone, CLONE_PIDFD | CLONE_DETACHED, 0, 0, 0, 0));
    uint64_t args[16] = { 0 };
    show("clone3, size 8", syscall(SYS_clone3, args, 8));
    show("clone3, size 8192", syscall(SYS_clone3, args, 8192));
    show("clone3 at a NULL-page address", syscall(SYS_clone3, null_page, 88));
    args[0] = CLONE_THREAD | CLONE_SIGHAND | CLONE_VM;
    args[4] = SIGCHLD;
    show("clone3 thread with an exit signal", syscall(SYS_clone3, args, 88));
    args[4] = 0;
    args[5] = 0x10000;
    show("clone3 with a stack but no stack size", syscall(SYS_clone3, args, 88));
    args[5] = 0;
    args[0] = 1ull << 40;
    show("clone3 with flag bit 40", syscall(SYS_clone3, args, 88));
    args[0] = 0;
    args[9] = 1;
    show("clone3 with set_tid_size but no set_tid", syscall(SYS_clone3, args, 88));
    args[9] = 0;
    args[11] = 1;
    show("clone3, size 96 with a non-zero tail", syscall(SYS_clone3, args, 96));

    show("set_robust_list(…, 10)", syscall(SYS_set_robust_list, NULL, 10));
    void *head;
    size_t len;
    show("get_robust_list(0, …)", syscall(SYS_get_robust_list, 0, &head, &len));
    printf("robust list length %zu, head set: %s\n", len, head ? "yes" : "no");
    show("get_robust_list(999999, …)", syscall(SYS_get_robust_list, 999999, &head, &len));
    show("get_robust_list(0, NULL-page, …)", syscall(SYS_get_robust_list, 0, null_page, &len));
    show("tgkill(pid, 999999, 0)", syscall(SYS_tgkill, getpid(), 999999, 0));
    show("tgkill(pid, own tid, 0)", syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), 0));
    show("tkill(0, 0)", syscall(SYS_tkill, 0, 0));
    show("tgkill(pid, own tid, SIGURG), ignored", syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGURG));
    show("sched_yield", syscall(SYS_sched_yield));
    return 0;
}
