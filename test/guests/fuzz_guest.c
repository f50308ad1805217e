/* Guest fuzzer: random system calls and hypercalls with adversarial arguments (pointers into the
 * system pages, the page tables, the ELF, past the end of RAM, non-canonical; huge, negative and
 * near-2^64 lengths and fds; random flags and SDK structs), so that the host's answer to each can
 * be checked: a result or errno, or a clean failure of this program alone.
 *
 *   fuzz_guest run SEED CALLS   run mode: CALLS random calls, then exit 0 or a fault (by the seed)
 *   fuzz_guest ok               prints "ok" and exits 0: the known answer after a failure
 *   fuzz_guest                  SDK mode: GET /ok answers "ok"; /fuzz?seed=S&ops=K[&huge=1] makes K
 *                               random calls, then responds, responds with a random te_response,
 *                               or faults (by the seed)
 *
 * Environment: FUZZ_SEED and FUZZ_CALLS stand in for the run-mode arguments; FUZZ_DIR is a
 * directory the host lets the program read (its data.txt is opened as fd 3 before fuzzing, so
 * file calls reach real files); FUZZ_RAM_MIB is the guest memory size (default 64), for pointers
 * into the page tables and past the end of RAM.
 *
 * `huge=1` enables the te_fetch with 256 headers whose names and values are all one 40 MiB buffer
 * (issue 9, defect 1). Without it every te_fetch header length is kept under 64 KiB or invalid.
 *
 * Every call is logged BEFORE it is made, as one line "FZ <n> <what> <args in hex>": to stderr in
 * run mode; in SDK mode as a KV_SET of the key "fz-log" (a failed request loses its te_log lines,
 * the host side of a test records these). The last line is the call that broke the host.
 * Past setup the fuzz loop makes system calls raw and calls no libc function that uses thread
 * data: a fuzzed arch_prctl may move FS, where libc keeps it (FS is put back after each arch_prctl).
 */
#include <tinyedge.h>

#define KiB 1024ul
#define MiB (1024ul * 1024ul)
#define SCRATCH_SIZE (256 * KiB)
#define HUGE_SIZE (40 * MiB)
#define MAX_HEADERS 300
#define LOG_MAX 900

/* Linux x86-64 system-call numbers the fuzzer shapes arguments for. */
enum {
    NR_read = 0, NR_write = 1, NR_open = 2, NR_close = 3, NR_stat = 4, NR_fstat = 5, NR_lstat = 6,
    NR_poll = 7, NR_lseek = 8, NR_mmap = 9, NR_mprotect = 10, NR_munmap = 11, NR_brk = 12, NR_pread64 = 17,
    NR_readv = 19, NR_writev = 20, NR_access = 21, NR_nanosleep = 35, NR_exit = 60, NR_kill = 62,
    NR_clone = 56, NR_readlink = 89, NR_arch_prctl = 158, NR_tkill = 200, NR_futex = 202, NR_clock_gettime = 228,
    NR_clock_getres = 229, NR_clock_nanosleep = 230, NR_exit_group = 231, NR_tgkill = 234,
    NR_openat = 257, NR_newfstatat = 262, NR_readlinkat = 267, NR_ppoll = 271,
    NR_pipe = 22, NR_epoll_create = 213, NR_epoll_wait = 232, NR_epoll_ctl = 233, NR_epoll_pwait = 281,
    NR_eventfd2 = 290, NR_epoll_create1 = 291, NR_pipe2 = 293, NR_epoll_pwait2 = 441,
    NR_rt_sigreturn = 15, NR_rt_sigpending = 127, NR_rt_sigsuspend = 130,
};
#define ARCH_SET_FS 0x1002
#define ARCH_GET_FS 0x1003
#define SYSCALL_MAX 450

/* The calls the host implements (src/vmm/linux/syscalls/index.ts SYSCALL_NUMBERS), exit and
 * exit_group left out: they would only end the run. */
static const int implemented[] = {
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 19, 20, 21, 24, 25, 28, 35, 39, 56, 62, 63,
    72, 79, 89, 96, 97, 99, 102, 104, 105, 106, 107, 108, 110, 131, 158, 160, 186, 200, 201, 202, 204,
    218, 228, 229, 230, 234, 257, 262, 267, 271, 273, 274, 302, 318, 334, 435,
    22, 213, 232, 233, 281, 284, 290, 291, 293, 441,
    15, 127, 130,
};
#define IMPLEMENTED_COUNT (sizeof implemented / sizeof implemented[0])

/* The guest memory map (src/vmm/layout.ts). */
#define GDT_ADDR 0x1000ul
#define IDT_ADDR 0x2000ul
#define TSS_ADDR 0x3000ul
#define STUBS_ADDR 0x4000ul
#define SYSCALL_FRAME_ADDR (0x5000ul - 40)
#define IST_STACK_TOP 0x8000ul
#define PML4_ADDR 0x8000ul
#define PDPT_ADDR 0x9000ul
#define PD_ADDR 0xa000ul
#define PROGRAM_BASE 0x400000ul

extern char __executable_start[], etext[], edata[], end[];

static unsigned char scratch[SCRATCH_SIZE] __attribute__((aligned(4096)));
static te_header headers[MAX_HEADERS];
static te_fetch fetch_struct;
static te_kv kv_struct;
static te_response random_response;
static struct { uint64_t sec, nsec; } short_sleep;
static char log_line[LOG_MAX + 100];
static size_t log_len;
static char *huge_buf;
static uint64_t ram_end = 64 * MiB;
static uint64_t saved_fs;
static uint64_t last_mapping;
static uint64_t rng;
static int sdk_mode;
static int huge_enabled;
static int op_index;

/* --- raw calls ------------------------------------------------------------------------------- */

static long sys6(long n, long a, long b, long c, long d, long e, long f) {
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9) : "rcx", "r11", "memory");
    return ret;
}

static long hyper(long call, long a, long b, long c) {
    long ret;
    __asm__ volatile("outb %%al, $0x80" : "=a"(ret) : "a"(call), "D"(a), "S"(b), "d"(c) : "memory");
    return ret;
}

/* Enters the system-call stub directly (ring 3 may run it) with RCX = the return address and
 * R11 = the RFLAGS to return with, as `syscall` never would. */
static long stub_syscall(long nr, long a, long b, long c, uint64_t rflags) {
    long ret;
    __asm__ volatile("lea 1f(%%rip), %%rcx\n\t"
                     "mov %[fl], %%r11\n\t"
                     "jmp *%[stub]\n"
                     "1:"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), [fl] "r"(rflags), [stub] "r"(STUBS_ADDR)
                     : "rcx", "r11", "memory", "cc");
    return ret;
}

/* --- random numbers -------------------------------------------------------------------------- */

static void seed_rng(uint64_t seed) {
    uint64_t z = seed + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    rng = (z ^ (z >> 31)) | 1;
}

static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint64_t below(uint64_t n) { return next() % n; }
static int chance(unsigned percent) { return below(100) < percent; }

/* --- the log --------------------------------------------------------------------------------- */

static void put_str(const char *s) {
    while (*s && log_len < LOG_MAX) log_line[log_len++] = *s++;
}

static void put_hex(uint64_t x) {
    char digits[17];
    int n = 0;
    do { digits[n++] = "0123456789abcdef"[x & 15]; x >>= 4; } while (x);
    if (log_len < LOG_MAX) log_line[log_len++] = ' ';
    while (n > 0 && log_len < LOG_MAX) log_line[log_len++] = digits[--n];
}

static void put_dec(uint64_t x) {
    char digits[21];
    int n = 0;
    do { digits[n++] = (char)('0' + x % 10); x /= 10; } while (x);
    while (n > 0 && log_len < LOG_MAX) log_line[log_len++] = digits[--n];
}

static void log_start(const char *what) {
    log_len = 0;
    put_str("FZ ");
    put_dec((uint64_t)op_index);
    put_str(" ");
    put_str(what);
}

static void put_words(const void *p, int words) {
    const uint64_t *w = (const uint64_t *)p;
    for (int i = 0; i < words; i++) put_hex(w[i]);
}

/* Sends the line; from here on the call it describes may break the host. */
static void log_end(void) {
    log_line[log_len++] = '\n';
    if (sdk_mode) {
        te_kv kv = { { "fz-log", 6 }, log_line, log_len };
        hyper(TE_CALL_KV_SET, (long)&kv, 0, 0);
    } else {
        sys6(NR_write, 2, (long)log_line, (long)log_len, 0, 0, 0);
    }
}

/* --- adversarial values ---------------------------------------------------------------------- */

static uint64_t scratch_ptr(void) { return (uint64_t)scratch + below(SCRATCH_SIZE); }

static uint64_t system_ptr(void) {
    static const uint64_t pages[] = { 0, GDT_ADDR, IDT_ADDR, TSS_ADDR, STUBS_ADDR, SYSCALL_FRAME_ADDR,
                                      IST_STACK_TOP - 8, IST_STACK_TOP - 48, PML4_ADDR, PDPT_ADDR, PD_ADDR,
                                      PD_ADDR + 3 * 4096, PROGRAM_BASE - 8, 0xfff };
    uint64_t p = pages[below(sizeof pages / sizeof pages[0])];
    return chance(50) ? p : p + below(4096);
}

static uint64_t elf_ptr(void) {
    switch (below(6)) {
    case 0: return (uint64_t)__executable_start;
    case 1: return (uint64_t)__executable_start + below((uint64_t)(etext - __executable_start));
    case 2: return (uint64_t)etext;
    case 3: return (uint64_t)edata - below(4096);
    case 4: return (uint64_t)end - 8;
    default: return (uint64_t)end;
    }
}

/* The page tables at the top of RAM (one page per 2 MiB), its end, and beyond. */
static uint64_t ram_end_ptr(void) {
    uint64_t tables = ram_end / (2 * MiB) * 4096;
    switch (below(6)) {
    case 0: return ram_end - tables + below(tables);
    case 1: return ram_end - 8;
    case 2: return ram_end;
    case 3: return ram_end + 4096 * below(1024);
    case 4: return 1ull << 32;
    default: return (1ull << 32) - 8;
    }
}

static uint64_t non_canonical(void) {
    static const uint64_t v[] = { 0x0000800000000000ull, 0x00007ffffffffff8ull, 0xffff800000000000ull,
                                  0x8000000000000000ull, 0xfffffffffffff000ull, 0xfffffffffffffff8ull,
                                  0x0000800000001000ull, 0x7ffffffffffff000ull };
    uint64_t p = v[below(sizeof v / sizeof v[0])];
    return chance(70) ? p : p + below(4096);
}

static uint64_t stack_ptr(void) {
    uint64_t sp = (uint64_t)__builtin_frame_address(0);
    return chance(50) ? sp + 4096 + below(4096) : sp - 65536 - below(65536);
}

/* A pointer of any kind: valid (scratch, mappings), system pages, ELF, past RAM, non-canonical. */
static uint64_t gen_ptr(void) {
    switch (below(20)) {
    case 0: case 1: case 2: case 3: case 4: case 5: return scratch_ptr();
    case 6: return (uint64_t)scratch + SCRATCH_SIZE - below(64);
    case 7: case 8: return system_ptr();
    case 9: case 10: return elf_ptr();
    case 11: case 12: return ram_end_ptr();
    case 13: case 14: return non_canonical();
    case 15: return 0;
    case 16: return last_mapping ? last_mapping + below(4096) : scratch_ptr();
    case 17: return chance(90) ? stack_ptr() : (uint64_t)huge_buf;
    case 18: return -(uint64_t)(1 + below(4096));
    default: return next();
    }
}

/* An integer of any kind: small, -1, AT_FDCWD, 2^31-1, 2^32, 2^63, 2^64-k, powers of two, random. */
static uint64_t gen_int(void) {
    switch (below(16)) {
    case 0: case 1: case 2: return below(17);
    case 3: return (uint64_t)-1;
    case 4: return (uint64_t)-100;
    case 5: return 0x7fffffffull;
    case 6: return 0x80000000ull;
    case 7: return 1ull << 32;
    case 8: return 0xffffffffull;
    case 9: return 1ull << 63;
    case 10: return (1ull << 63) - 1;
    case 11: return -(uint64_t)(1 + below(4096));
    case 12: return 1ull << below(64);
    case 13: return below(4096);
    case 14: return next();
    default: return 0xffffffff00000000ull | below(64);
    }
}

static uint64_t gen_len(void) {
    switch (below(12)) {
    case 0: case 1: case 2: return below(64);
    case 3: case 4: return below(8192);
    case 5: return SCRATCH_SIZE;
    case 6: return HUGE_SIZE;
    case 7: return ram_end;
    case 8: return 4096 * (1 + below(64));
    default: return gen_int();
    }
}

static uint64_t gen_fd(void) {
    static const uint64_t fds[] = { 0, 1, 2, 3, 3, 3, 4, 255, 256, 1024, (uint64_t)-1, (uint64_t)-100,
                                    0x7fffffff, 0x80000000, 0xffffffff, 1ull << 32, 0x100000003ull };
    return chance(80) ? fds[below(sizeof fds / sizeof fds[0])] : gen_int();
}

static uint64_t gen_any(void) { return chance(50) ? gen_ptr() : gen_int(); }

/* Strings the host may resolve: relative, absolute, under FUZZ_DIR, escaping it, over-long. */
static const char *const path_table[] = {
    "", "/", ".", "..", "data.txt", "/etc/passwd", "/proc/self/mem", "/dev/kvm", "../../../../etc/hostname",
    "a/b/../../data.txt", "//////", "/tmp", "x\xff\xfe", 0 /* FUZZ_DIR/data.txt */, 0 /* FUZZ_DIR */,
    0 /* FUZZ_DIR/../ */, 0 /* FUZZ_DIR/data.txt/x */,
};
#define PATH_COUNT (sizeof path_table / sizeof path_table[0])
#define PATHS_OFFSET 0
#define PATH_SLOT 256
#define LONG_PATH_OFFSET (PATH_SLOT * PATH_COUNT)
static char dir_paths[4][PATH_SLOT];

static uint64_t path_ptr(int i) { return (uint64_t)scratch + PATHS_OFFSET + (uint64_t)i * PATH_SLOT; }

/* Rewrites the path strings in scratch (a previous call may have overwritten them). */
static void refresh_paths(void) {
    for (unsigned i = 0; i < PATH_COUNT; i++) {
        const char *s = path_table[i] ? path_table[i] : dir_paths[i - (PATH_COUNT - 4)];
        char *d = (char *)scratch + PATHS_OFFSET + i * PATH_SLOT;
        unsigned j = 0;
        for (; s[j] && j < PATH_SLOT - 1; j++) d[j] = s[j];
        d[j] = 0;
    }
    /* 5000 bytes without NUL, then one: longer than PATH_MAX and the host's 4 KiB read. */
    char *l = (char *)scratch + LONG_PATH_OFFSET;
    for (unsigned j = 0; j < 5000; j++) l[j] = 'a';
    l[5000] = 0;
}

static uint64_t gen_path(void) {
    if (chance(15)) return gen_ptr();
    if (chance(5)) return (uint64_t)scratch + LONG_PATH_OFFSET;
    return path_ptr((int)below(PATH_COUNT));
}

static uint64_t gen_flags(void) {
    static const uint64_t f[] = { 0, 0, 0x10000 /* O_DIRECTORY */, 1, 2, 0x40 /* O_CREAT */, 0x200, 0x400,
                                  0x80000 /* O_CLOEXEC */, 0x1000 /* AT_EMPTY_PATH */, 0x100, 0x200000 /* O_PATH */ };
    return chance(70) ? f[below(sizeof f / sizeof f[0])] : gen_int();
}

static uint64_t gen_clock(void) {
    /* ~pid << 3 | 2 (CPUCLOCK_SCHED of a process), and per-thread (| 4) variants, for pids 0, 1, 2, random. */
    uint64_t pid = chance(50) ? below(3) : below(1 << 22);
    switch (below(6)) {
    case 0: case 1: return below(16);
    case 2: return (uint64_t)(int64_t)(int32_t)((~(uint32_t)pid << 3) | 2);
    case 3: return (uint64_t)(int64_t)(int32_t)((~(uint32_t)pid << 3) | (below(8)));
    case 4: return (uint64_t)(uint32_t)((~(uint32_t)pid << 3) | 2); /* not sign-extended */
    default: return gen_int();
    }
}

/* A sleep request the host either rejects or answers within 2 ms. */
static uint64_t gen_sleep_ptr(void) {
    short_sleep.sec = 0;
    short_sleep.nsec = below(2000000);
    if (chance(10)) short_sleep.nsec = 1000000000 + below(10);
    switch (below(6)) {
    case 0: return GDT_ADDR + below(IST_STACK_TOP - GDT_ADDR);
    case 1: return non_canonical();
    case 2: return ram_end_ptr();
    default: return (uint64_t)&short_sleep;
    }
}

/* A clock for clock_nanosleep: any id when the request is bogus; otherwise not a CPU-time clock,
 * whose time does not pass while the program sleeps (a sleep on it lasts to the time limit). */
static uint64_t gen_sleep_clock(uint64_t req) {
    if (req != (uint64_t)&short_sleep) return gen_clock();
    static const uint64_t clocks[] = { 0, 1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 16 };
    return clocks[below(sizeof clocks / sizeof clocks[0])];
}

/* An iovec array in scratch (past the path strings), or a bogus pointer. */
static uint64_t gen_iov(void) {
    if (chance(20)) return gen_ptr();
    uint64_t *iov = (uint64_t *)(scratch + SCRATCH_SIZE / 2);
    for (int i = 0; i < 32; i++) {
        iov[2 * i] = chance(60) ? scratch_ptr() : gen_ptr();
        iov[2 * i + 1] = chance(60) ? below(512) : gen_len();
    }
    return (uint64_t)iov;
}

/* --- system calls ---------------------------------------------------------------------------- */

static int pick_syscall(void) {
    for (;;) {
        int nr = chance(75) ? implemented[below(IMPLEMENTED_COUNT)] : (int)below(SYSCALL_MAX + 1);
        /* A random rt_sigreturn mostly ends the run (SIGSEGV for the frame it finds): now and then. */
        if (nr == NR_rt_sigreturn && !chance(10)) continue;
        if (nr != NR_exit && nr != NR_exit_group) return nr;
    }
}

/* The number in RAX: sometimes with junk in the upper half, which the kernel ignores (it reads EAX). */
static uint64_t syscall_rax(int nr) {
    return chance(5) ? (next() & 0xffffffff00000000ull) | (uint32_t)nr : (uint64_t)nr;
}

static void shape_args(int nr, uint64_t a[6]) {
    for (int i = 0; i < 6; i++) a[i] = gen_any();
    switch (nr) {
    case NR_read: case NR_write: case NR_pread64:
        a[0] = gen_fd(); a[1] = gen_ptr(); a[2] = gen_len(); a[3] = gen_int();
        break;
    case NR_readv: case NR_writev:
        a[0] = gen_fd(); a[1] = gen_iov(); a[2] = chance(70) ? below(40) : gen_int();
        break;
    case NR_open: case NR_stat: case NR_lstat: case NR_access: case NR_readlink:
        a[0] = gen_path(); a[1] = nr == NR_open ? gen_flags() : gen_ptr(); a[2] = gen_len();
        break;
    case NR_openat: case NR_newfstatat: case NR_readlinkat:
        a[0] = gen_fd(); a[1] = gen_path(); a[2] = nr == NR_openat ? gen_flags() : gen_ptr(); a[3] = gen_flags();
        break;
    case NR_close: case NR_fstat:
        a[0] = gen_fd();
        break;
    case NR_lseek:
        a[0] = gen_fd(); a[1] = gen_int(); a[2] = chance(80) ? below(5) : gen_int();
        break;
    case NR_mmap:
        a[0] = chance(50) ? 0 : (chance(50) ? gen_ptr() & ~4095ull : gen_ptr());
        a[1] = gen_len();
        a[2] = below(8);
        a[3] = chance(70) ? (uint64_t[]){ 0x22, 0x02, 0x01, 0x32, 0x12, 0x100022, 0x100002 }[below(7)] : gen_int();
        a[4] = gen_fd();
        a[5] = chance(30) ? (1ull << (12 + below(52))) : chance(50) ? 0 : gen_int();
        break;
    case NR_munmap: case NR_mprotect:
        a[0] = chance(30) && last_mapping ? last_mapping : gen_ptr() & ~4095ull; a[1] = gen_len(); a[2] = below(8);
        break;
    case NR_brk:
        a[0] = chance(50) ? (uint64_t)end + below(8 * MiB) : gen_ptr();
        break;
    case NR_nanosleep:
        a[0] = gen_sleep_ptr(); a[1] = gen_ptr();
        break;
    case NR_poll: case NR_ppoll:
        /* A pollfd array of random fds and events in scratch, or a hostile pointer; short waits. */
        a[0] = chance(70) ? scratch_ptr() & ~7ull : gen_ptr();
        for (int i = 0; i < 8 && a[0] >= (uint64_t)scratch && a[0] + 64 <= (uint64_t)scratch + SCRATCH_SIZE; i++) {
            uint64_t fd = gen_fd();
            __builtin_memcpy((char *)a[0] + 8 * i, &fd, 4);
            uint32_t events = (uint32_t)next();
            __builtin_memcpy((char *)a[0] + 8 * i + 4, &events, 4);
        }
        a[1] = chance(80) ? below(9) : gen_int();
        if (nr == NR_poll) a[2] = chance(90) ? below(3) : gen_int();
        else { a[2] = chance(20) ? 0 : gen_sleep_ptr(); a[3] = chance(50) ? 0 : gen_ptr(); a[4] = chance(80) ? 8 : gen_int(); }
        break;
    case NR_pipe: case NR_pipe2:
        a[0] = chance(70) ? scratch_ptr() & ~3ull : gen_ptr(); a[1] = chance(70) ? (uint64_t[]){ 0, 0x800, 0x80000, 0x80800 }[below(4)] : gen_int();
        break;
    case NR_eventfd2:
        a[0] = chance(70) ? below(10) : gen_int(); a[1] = chance(70) ? (uint64_t[]){ 0, 1, 0x800, 0x80801 }[below(4)] : gen_int();
        break;
    case NR_epoll_create: case NR_epoll_create1:
        a[0] = chance(70) ? (nr == NR_epoll_create ? 1 + below(4) : 0) : gen_int();
        break;
    case NR_epoll_ctl:
        /* An event struct of random bits in scratch, or a hostile pointer. */
        a[0] = gen_fd(); a[1] = chance(80) ? 1 + below(3) : gen_int(); a[2] = gen_fd(); a[3] = chance(70) ? scratch_ptr() : gen_ptr();
        if (a[3] >= (uint64_t)scratch && a[3] + 12 <= (uint64_t)scratch + SCRATCH_SIZE) {
            uint32_t events = (uint32_t)next();
            __builtin_memcpy((char *)a[3], &events, 4);
        }
        break;
    case NR_epoll_wait: case NR_epoll_pwait: case NR_epoll_pwait2:
        /* Short waits only: a wait with no end would last the run's whole time limit. */
        a[0] = gen_fd(); a[1] = chance(70) ? scratch_ptr() : gen_ptr(); a[2] = chance(80) ? below(8) : gen_int();
        a[3] = nr == NR_epoll_pwait2 ? (chance(80) ? gen_sleep_ptr() : gen_ptr()) : (chance(90) ? below(3) : gen_int());
        a[4] = chance(50) ? 0 : gen_ptr(); a[5] = chance(80) ? 8 : gen_int();
        break;
    case NR_clock_nanosleep:
        a[2] = gen_sleep_ptr(); a[0] = gen_sleep_clock(a[2]); a[1] = chance(50) ? 0 : chance(50) ? 1 : gen_int(); a[3] = gen_ptr();
        break;
    case NR_clock_gettime: case NR_clock_getres:
        a[0] = gen_clock(); a[1] = chance(80) ? scratch_ptr() : gen_ptr();
        break;
    case NR_arch_prctl:
        a[0] = chance(80) ? 0x1001 + below(4) : gen_int(); a[1] = gen_any();
        break;
    case NR_futex:
        a[0] = gen_ptr(); a[1] = chance(70) ? (uint64_t[]){ 0, 1, 3, 4, 5, 9, 10, 128, 129, 137 }[below(10)] : gen_int(); a[2] = gen_int();
        break;
    /* Now and then a real thread: on this very stack (0) or a random one, so both threads fuzz on. */
    case NR_clone:
        if (chance(10)) { a[0] = 0x3d0f00; a[1] = chance(50) ? 0 : gen_ptr(); }
        break;
    /* Real signals would end the program, uninterestingly: ask only whether the target exists. */
    case NR_kill: a[0] = gen_int(); a[1] = 0; break;
    case NR_tkill: a[0] = gen_int(); a[1] = 0; break;
    case NR_tgkill: a[0] = gen_int(); a[1] = gen_int(); a[2] = 0; break;
    /* A valid set waits for a signal nobody sends: mostly a wrong size or a bad pointer. */
    case NR_rt_sigsuspend: a[0] = chance(50) ? scratch_ptr() : gen_ptr(); a[1] = chance(90) ? gen_len() : 8; break;
    default:
        break;
    }
}

static void op_syscall(void) {
    int nr = pick_syscall();
    uint64_t a[6];
    refresh_paths();
    shape_args(nr, a);
    uint64_t rax = syscall_rax(nr);
    log_start("sys ");
    put_dec(rax);
    put_words(a, 6);
    log_end();
    long r = sys6((long)rax, (long)a[0], (long)a[1], (long)a[2], (long)a[3], (long)a[4], (long)a[5]);
    if ((nr == NR_mmap || nr == NR_brk) && r > 0 && (uint64_t)r >= PROGRAM_BASE && (uint64_t)r < ram_end) last_mapping = (uint64_t)r & ~4095ull;
    if (nr == NR_arch_prctl) sys6(NR_arch_prctl, ARCH_SET_FS, (long)saved_fs, 0, 0, 0, 0);
}

/* The system-call stub entered directly, with a random call and random return RFLAGS. */
static void op_stub_syscall(void) {
    static const int safe[] = { 39, 102, 186, 24, 1, 0, 5, 63, 228 };
    int nr = safe[below(sizeof safe / sizeof safe[0])];
    uint64_t a = nr == 1 ? 2 : gen_any(), b = gen_ptr(), c = gen_len() & 0xfff;
    /* Mostly RFLAGS a program could have; sometimes TF, DF, AC, NT, IOPL changes, reserved bits. */
    uint64_t fl = chance(80) ? 0x202 | (below(2) ? 0x44 : 0) : chance(70) ? (0x202 | (1ull << below(22))) : next();
    log_start("stub ");
    put_dec((uint64_t)nr);
    put_hex(a);
    put_hex(b);
    put_hex(c);
    put_hex(fl);
    log_end();
    stub_syscall(nr, (long)a, (long)b, (long)c, fl);
    __asm__ volatile("cld");
}

/* --- hypercalls ------------------------------------------------------------------------------ */

static uint64_t gen_call(void) {
    static const uint64_t calls[] = { 2, 3, 4, 5, 6, 7, 0, 8, 0x80 };
    switch (below(10)) {
    case 0: return 1; /* WAIT with whatever: ends the request */
    case 1: return next();
    case 2: return (next() & 0xffffffff00000000ull) | (2 + below(5)); /* the host reads EAX only */
    default: return calls[below(sizeof calls / sizeof calls[0])];
    }
}

static void op_hypercall(void) {
    uint64_t call = gen_call();
    if (call == 1 && !chance(10)) call = 2;
    uint64_t a = gen_any(), b = gen_len(), c = gen_any();
    log_start("hyp");
    put_hex(call);
    put_hex(a);
    put_hex(b);
    put_hex(c);
    log_end();
    hyper((long)call, (long)a, (long)b, (long)c);
}

static void op_log(void) {
    uint64_t p = gen_ptr(), n = gen_len();
    log_start("log");
    put_hex(p);
    put_hex(n);
    log_end();
    hyper(TE_CALL_LOG, (long)p, (long)n, 0);
}

/* Header lengths stay under 64 KiB (or invalid) unless the 256 x 40 MiB case is enabled. */
static uint64_t header_len(void) {
    uint64_t n = gen_len();
    if (!huge_enabled && n >= 64 * KiB && n < (1ull << 32)) n %= 64 * KiB;
    return n;
}

static const char *const words[] = { "", "default", "GET", "POST", "/", "/x?y=1", "nope", "X-A", "v\r\nX: y", "\xff\xfe", "a b" };
#define WORD_COUNT (sizeof words / sizeof words[0])

static void gen_str(te_str *s, int header) {
    if (chance(50)) {
        const char *w = words[below(WORD_COUNT)];
        s->ptr = w;
        s->len = strlen(w);
    } else {
        s->ptr = (const char *)gen_ptr();
        s->len = header ? header_len() : gen_len();
    }
}

static void valid_str(te_str *s) {
    const char *w = words[below(WORD_COUNT)];
    s->ptr = w;
    s->len = strlen(w);
}

static uint64_t gen_count(void) {
    switch (below(8)) {
    case 0: case 1: case 2: return below(6);
    case 3: return 256;
    case 4: return 257;
    case 5: return below(MAX_HEADERS);
    default: return gen_int();
    }
}

/* Replaces 1 to 3 of `n` words (pointers, lengths, counts) with adversarial values. */
static void mutate_words(uint64_t *w, int n) {
    for (int k = 1 + (int)below(3); k > 0; k--) w[below((uint64_t)n)] = chance(50) ? gen_ptr() : chance(70) ? gen_len() : gen_count();
}

/* Fills the first `count` entries of `headers` (valid strings, some of them adversarial). */
static void fill_headers(uint64_t count, int adversarial) {
    uint64_t n = count < MAX_HEADERS ? count : MAX_HEADERS;
    for (uint64_t i = 0; i < n; i++) {
        if (adversarial == 2 || (adversarial && chance(10))) {
            gen_str(&headers[i].name, 1);
            gen_str(&headers[i].value, 1);
        } else {
            valid_str(&headers[i].name);
            valid_str(&headers[i].value);
        }
    }
}

/* The header lengths in a mutated te_fetch stay under 64 KiB unless `huge=1` (see the top). */
static void cap_header_words(void) {
    for (int i = 0; i < MAX_HEADERS; i++) {
        te_header *h = &headers[i];
        if (!huge_enabled && h->name.len >= 64 * KiB && h->name.len < (1ull << 32)) h->name.len %= 64 * KiB;
        if (!huge_enabled && h->value.len >= 64 * KiB && h->value.len < (1ull << 32)) h->value.len %= 64 * KiB;
    }
}

/* A valid te_fetch with a few fields made adversarial, or (one time in five) a random one. */
static void fill_fetch(te_fetch *f) {
    int random = chance(20);
    valid_str(&f->origin);
    valid_str(&f->method);
    valid_str(&f->url);
    valid_str(&f->body);
    f->header_count = below(6);
    f->headers = headers;
    f->resp_body = (char *)scratch + SCRATCH_SIZE / 4;
    f->resp_body_cap = below(4096);
    f->resp_body_len = 0;
    f->resp_headers = (char *)scratch + SCRATCH_SIZE / 4 + 8192;
    f->resp_headers_cap = below(4096);
    f->resp_headers_len = 0;
    if (random) {
        gen_str(&f->origin, 0);
        gen_str(&f->method, 0);
        gen_str(&f->url, 0);
        gen_str(&f->body, 0);
        f->header_count = gen_count();
        f->headers = chance(85) ? headers : (const te_header *)gen_ptr();
        f->resp_body = (char *)gen_ptr();
        f->resp_body_cap = gen_len();
        f->resp_headers = (char *)gen_ptr();
        f->resp_headers_cap = gen_len();
    } else {
        mutate_words((uint64_t *)f, 16);
    }
    fill_headers(f->header_count, random ? 2 : 1);
    cap_header_words();
}

/* Summary of the header array: how many entries, and the largest length among the first 300. */
static void put_headers_summary(const te_fetch *f) {
    uint64_t longest = 0;
    if ((uint64_t)f->headers == (uint64_t)headers) {
        uint64_t n = f->header_count < MAX_HEADERS ? f->header_count : MAX_HEADERS;
        for (uint64_t i = 0; i < n; i++) {
            if (headers[i].name.len > longest) longest = headers[i].name.len;
            if (headers[i].value.len > longest) longest = headers[i].value.len;
        }
    }
    put_str(" longest-header");
    put_hex(longest);
}

static void op_fetch(void) {
    te_fetch *f = &fetch_struct;
    const char *what = "fetch";
    if (huge_enabled && huge_buf && chance(10)) {
        /* Issue 9, defect 1: 256 headers, every name and value the same 40 MiB buffer. */
        memset(f, 0, sizeof *f);
        for (int i = 0; i < 256; i++) {
            headers[i].name.ptr = huge_buf; headers[i].name.len = HUGE_SIZE;
            headers[i].value.ptr = huge_buf; headers[i].value.len = HUGE_SIZE;
        }
        f->headers = headers;
        f->header_count = 256;
        what = "fetch-huge";
    } else {
        fill_fetch(f);
    }
    uint64_t at = chance(85) ? (uint64_t)f : gen_ptr();
    log_start(what);
    put_hex(at);
    put_words(f, 16);
    put_headers_summary(f);
    log_end();
    hyper(TE_CALL_FETCH, (long)at, 0, 0);
}

static void op_kv(void) {
    te_kv *kv = &kv_struct;
    uint64_t call = TE_CALL_KV_GET + below(3);
    /* Keys are a handful of names in scratch, so gets and deletes find what sets stored. */
    char *key = (char *)scratch + SCRATCH_SIZE / 4 + 16384;
    key[0] = (char)('k' + below(4));
    kv->key.ptr = key;
    kv->key.len = chance(80) ? 1 : (uint64_t[]){ 8, 1024, 1025, 0 }[below(4)];
    kv->value = (char *)scratch + SCRATCH_SIZE / 4 + 20480;
    kv->value_cap = below(256);
    if (chance(60)) mutate_words((uint64_t *)kv, 4);
    uint64_t at = chance(90) ? (uint64_t)kv : gen_ptr();
    log_start("kv");
    put_hex(call);
    put_hex(at);
    put_words(kv, 4);
    log_end();
    hyper((long)call, (long)at, 0, 0);
}

/* --- endings --------------------------------------------------------------------------------- */

/* Ends the run or request with a CPU exception or a forbidden instruction. */
static void fault(void) {
    unsigned kind = (unsigned)below(10);
    log_start("fault");
    put_hex(kind);
    log_end();
    switch (kind) {
    case 0: *(volatile int *)0 = 1; break;
    case 1: __asm__ volatile("ud2"); break;
    case 2: __asm__ volatile("outb %%al, %%dx" : : "a"(0), "d"((uint16_t)(below(2) ? 0x10 + below(0x60) : below(0x10000)))); break;
    case 3: __asm__ volatile("hlt"); break;
    case 4: __asm__ volatile("int3"); break;
    case 5: { volatile int zero = 0; volatile int x = 1 / zero; (void)x; break; }
    case 6: ((void (*)(void))0x0000800000000000ull)(); break;
    case 7: *(volatile char *)__executable_start = 0; break;
    case 8: __asm__ volatile("inb $0x80, %%al" : : : "rax"); break;
    default: {
        /* An exception stub entered directly, with RSP in the IST stack or the user stack. */
        uint64_t stub = STUBS_ADDR + 16 + 4 * below(32);
        uint64_t sp = chance(50) ? IST_STACK_TOP - 8 * (1 + below(8)) : (uint64_t)__builtin_frame_address(0) - 256;
        __asm__ volatile("mov %0, %%rsp\n\tjmp *%1" : : "r"(sp), "r"(stub) : "memory");
    }
    }
}

static void random_op(void) {
    op_index++;
    unsigned r = (unsigned)below(100);
    if (!sdk_mode) {
        if (r < 92) op_syscall();
        else if (r < 98) op_hypercall();
        else op_stub_syscall();
        return;
    }
    if (r < 50) op_syscall();
    else if (r < 62) op_hypercall();
    else if (r < 75) op_fetch();
    else if (r < 90) op_kv();
    else if (r < 98) op_log();
    else op_stub_syscall();
}

/* A valid te_response with a few fields made adversarial, or (one time in five) a random one. */
static void fill_random_response(te_response *r) {
    r->status = 200;
    r->flags = TE_RESPONDED;
    r->header_count = (uint32_t)below(4);
    r->reserved = 0;
    r->headers = headers;
    valid_str(&r->body);
    r->ttl_ms = r->grace_ms = r->keep_ms = -1;
    valid_str(&r->tags);
    valid_str(&r->url);
    if (chance(20)) {
        uint64_t *w = (uint64_t *)r;
        for (unsigned i = 0; i < sizeof *r / 8; i++) w[i] = gen_any();
        r->header_count = (uint32_t)gen_count();
        if (chance(80)) r->headers = headers;
    } else {
        mutate_words((uint64_t *)r + 2, 10);
        if (chance(30)) r->status = chance(50) ? (uint32_t)below(1000) : (uint32_t)next();
        if (chance(30)) r->flags = (uint32_t)(chance(70) ? below(16) : next());
        if (chance(20)) r->header_count = (uint32_t)gen_count();
    }
    fill_headers(r->header_count, 1);
}

/* --- modes ----------------------------------------------------------------------------------- */

static uint64_t parse_u64(const char *s, size_t n) {
    uint64_t x = 0;
    for (size_t i = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++) x = x * 10 + (uint64_t)(s[i] - '0');
    return x;
}

/* The value of `key` in a query string (key=value&...), or 0. */
static uint64_t query_u64(te_str q, const char *key) {
    size_t k = strlen(key);
    for (size_t i = 0; i + k < q.len; i++) {
        if ((i == 0 || q.ptr[i - 1] == '&') && memcmp(q.ptr + i, key, k) == 0 && q.ptr[i + k] == '=') {
            size_t j = i + k + 1, e = j;
            while (e < q.len && q.ptr[e] != '&') e++;
            return parse_u64(q.ptr + j, e - j);
        }
    }
    return 0;
}

static const char ok_body[] = "ok";
static char done_body[64];

static int path_is(te_str path, const char *p) { return path.len == strlen(p) && memcmp(path.ptr, p, path.len) == 0; }

/* Handles one request; returns the te_response to hand back with WAIT. */
static te_response *handle(const te_request *req) {
    te__reset_response();
    te_str path = req->path, query = req->query;
    if (!path_is(path, "/fuzz")) {
        te_respond(path_is(path, "/ok") ? 200 : 404, "text/plain", ok_body, path_is(path, "/ok") ? 2 : 0);
        return &te__response;
    }
    uint64_t seed = query_u64(query, "seed");
    uint64_t ops = query_u64(query, "ops");
    huge_enabled = query_u64(query, "huge") != 0;
    seed_rng(seed);
    op_index = 0;
    last_mapping = 0;
    for (uint64_t i = 0; i < ops; i++) random_op();
    unsigned ending = (unsigned)below(10);
    if (ending < 6) {
        log_start("respond");
        log_end();
        log_len = 0;
        put_str("fuzzed ");
        put_dec(ops);
        size_t n = log_len < sizeof done_body ? log_len : sizeof done_body;
        memcpy(done_body, log_line, n);
        te_respond(200, "text/plain", done_body, n);
        return &te__response;
    }
    if (ending < 9) {
        fill_random_response(&random_response);
        log_start("random-response");
        put_words(&random_response, 12);
        log_end();
        return &random_response;
    }
    fault();
    return &te__response;
}

static void setup(const char *dir, const char *ram_mib) {
    if (ram_mib) ram_end = parse_u64(ram_mib, strlen(ram_mib)) * MiB;
    if (dir) {
        snprintf(dir_paths[0], PATH_SLOT, "%s/data.txt", dir);
        snprintf(dir_paths[1], PATH_SLOT, "%s", dir);
        snprintf(dir_paths[2], PATH_SLOT, "%s/../", dir);
        snprintf(dir_paths[3], PATH_SLOT, "%s/data.txt/x", dir);
        refresh_paths();
        sys6(NR_open, (long)dir_paths[0], 0, 0, 0, 0, 0);
    }
    sys6(NR_arch_prctl, ARCH_GET_FS, (long)&saved_fs, 0, 0, 0, 0);
    long p = sys6(NR_mmap, 0, (long)HUGE_SIZE, 3, 0x22, -1, 0);
    huge_buf = p > 0 ? (char *)p : NULL;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : NULL;
    if (mode && strcmp(mode, "ok") == 0) {
        sys6(NR_write, 1, (long)"ok\n", 3, 0, 0, 0);
        return 0;
    }
    setup(getenv("FUZZ_DIR"), getenv("FUZZ_RAM_MIB"));
    if (mode && strcmp(mode, "run") == 0) {
        const char *s = argc > 2 ? argv[2] : getenv("FUZZ_SEED");
        const char *c = argc > 3 ? argv[3] : getenv("FUZZ_CALLS");
        uint64_t calls = c ? parse_u64(c, strlen(c)) : 100;
        seed_rng(s ? parse_u64(s, strlen(s)) : 0);
        for (uint64_t i = 0; i < calls; i++) random_op();
        if (below(10) < 8) {
            log_start("exit");
            log_end();
            sys6(NR_exit_group, 0, 0, 0, 0, 0, 0);
        }
        fault();
        sys6(NR_exit_group, 1, 0, 0, 0, 0, 0);
        return 1;
    }
    sdk_mode = 1;
    te_response *resp = NULL;
    for (;;) {
        const te_request *req = (const te_request *)hyper(TE_CALL_WAIT, (long)resp, 0, 0);
        resp = handle(req);
    }
}
