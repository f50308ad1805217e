// The kernel's names for the flags and constants the trace decodes (decode.ts), with the values
// of the x86-64 UAPI headers: include/uapi/asm-generic/fcntl.h, mman-common.h, sched.h, signal.h,
// futex.h, time.h, resource.h, arch/x86/include/uapi/asm/prctl.h and asm-generic/ioctls.h.

/** Bit sets: printed as `A|B|0xrest`; a 0 entry names the empty set. */
export type FlagKind = 'open' | 'prot' | 'map' | 'clone' | 'at' | 'access' | 'mremap' | 'getrandom' | 'timer';
/** Enumerations: printed by name, or as the number. */
export type ConstantKind = 'whence' | 'fcntl' | 'futex' | 'clock' | 'signal' | 'sighow' | 'arch_prctl' | 'madvise' | 'ioctl' | 'rlimit';

export const FLAG_NAMES: Record<FlagKind, ReadonlyArray<readonly [number, string]>> = {
  // The access mode (the low two bits) is decoded apart; O_SYNC is __O_SYNC|O_DSYNC.
  open: [
    [0o4010000, 'O_SYNC'], [0o100, 'O_CREAT'], [0o200, 'O_EXCL'], [0o400, 'O_NOCTTY'], [0o1000, 'O_TRUNC'],
    [0o2000, 'O_APPEND'], [0o4000, 'O_NONBLOCK'], [0o10000, 'O_DSYNC'], [0o20000, 'O_ASYNC'], [0o40000, 'O_DIRECT'],
    [0o100000, 'O_LARGEFILE'], [0o200000, 'O_DIRECTORY'], [0o400000, 'O_NOFOLLOW'], [0o1000000, 'O_NOATIME'],
    [0o2000000, 'O_CLOEXEC'], [0o10000000, 'O_PATH'], [0o20000000, 'O_TMPFILE'],
  ],
  prot: [[0, 'PROT_NONE'], [1, 'PROT_READ'], [2, 'PROT_WRITE'], [4, 'PROT_EXEC'], [0x01000000, 'PROT_GROWSDOWN'], [0x02000000, 'PROT_GROWSUP']],
  map: [
    [3, 'MAP_SHARED_VALIDATE'], [1, 'MAP_SHARED'], [2, 'MAP_PRIVATE'], [0x10, 'MAP_FIXED'], [0x20, 'MAP_ANONYMOUS'],
    [0x40, 'MAP_32BIT'], [0x100, 'MAP_GROWSDOWN'], [0x800, 'MAP_DENYWRITE'], [0x1000, 'MAP_EXECUTABLE'],
    [0x2000, 'MAP_LOCKED'], [0x4000, 'MAP_NORESERVE'], [0x8000, 'MAP_POPULATE'], [0x10000, 'MAP_NONBLOCK'],
    [0x20000, 'MAP_STACK'], [0x40000, 'MAP_HUGETLB'], [0x80000, 'MAP_SYNC'], [0x100000, 'MAP_FIXED_NOREPLACE'],
  ],
  clone: [
    [0x100, 'CLONE_VM'], [0x200, 'CLONE_FS'], [0x400, 'CLONE_FILES'], [0x800, 'CLONE_SIGHAND'], [0x1000, 'CLONE_PIDFD'],
    [0x2000, 'CLONE_PTRACE'], [0x4000, 'CLONE_VFORK'], [0x8000, 'CLONE_PARENT'], [0x10000, 'CLONE_THREAD'],
    [0x20000, 'CLONE_NEWNS'], [0x40000, 'CLONE_SYSVSEM'], [0x80000, 'CLONE_SETTLS'], [0x100000, 'CLONE_PARENT_SETTID'],
    [0x200000, 'CLONE_CHILD_CLEARTID'], [0x400000, 'CLONE_DETACHED'], [0x800000, 'CLONE_UNTRACED'],
    [0x1000000, 'CLONE_CHILD_SETTID'], [0x2000000, 'CLONE_NEWCGROUP'], [0x4000000, 'CLONE_NEWUTS'],
    [0x8000000, 'CLONE_NEWIPC'], [0x10000000, 'CLONE_NEWUSER'], [0x20000000, 'CLONE_NEWPID'],
    [0x40000000, 'CLONE_NEWNET'], [0x80000000, 'CLONE_IO'],
  ],
  // For fstatat, statx and faccessat2 (0x200 is AT_REMOVEDIR to unlinkat, which prints in hex).
  at: [[0x100, 'AT_SYMLINK_NOFOLLOW'], [0x200, 'AT_EACCESS'], [0x800, 'AT_NO_AUTOMOUNT'], [0x1000, 'AT_EMPTY_PATH']],
  access: [[0, 'F_OK'], [4, 'R_OK'], [2, 'W_OK'], [1, 'X_OK']],
  mremap: [[1, 'MREMAP_MAYMOVE'], [2, 'MREMAP_FIXED'], [4, 'MREMAP_DONTUNMAP']],
  getrandom: [[1, 'GRND_NONBLOCK'], [2, 'GRND_RANDOM'], [4, 'GRND_INSECURE']],
  timer: [[1, 'TIMER_ABSTIME']],
};

const names = (entries: ReadonlyArray<readonly [number, string]>): ReadonlyMap<number, string> => new Map(entries);
/** Consecutive values from 0: `list[i]` names i. */
const sequence = (list: string): ReadonlyMap<number, string> => new Map(list.split(' ').map((name, i) => [i, name]));

const SIGNALS = 'SIGHUP SIGINT SIGQUIT SIGILL SIGTRAP SIGABRT SIGBUS SIGFPE SIGKILL SIGUSR1 SIGSEGV SIGUSR2 SIGPIPE ' +
  'SIGALRM SIGTERM SIGSTKFLT SIGCHLD SIGCONT SIGSTOP SIGTSTP SIGTTIN SIGTTOU SIGURG SIGXCPU SIGXFSZ SIGVTALRM SIGPROF ' +
  'SIGWINCH SIGIO SIGPWR SIGSYS';

export const CONSTANT_NAMES: Record<ConstantKind, ReadonlyMap<number, string>> = {
  whence: sequence('SEEK_SET SEEK_CUR SEEK_END SEEK_DATA SEEK_HOLE'),
  fcntl: names([
    [0, 'F_DUPFD'], [1, 'F_GETFD'], [2, 'F_SETFD'], [3, 'F_GETFL'], [4, 'F_SETFL'], [5, 'F_GETLK'], [6, 'F_SETLK'],
    [7, 'F_SETLKW'], [8, 'F_SETOWN'], [9, 'F_GETOWN'], [10, 'F_SETSIG'], [11, 'F_GETSIG'], [15, 'F_SETOWN_EX'],
    [16, 'F_GETOWN_EX'], [36, 'F_OFD_GETLK'], [37, 'F_OFD_SETLK'], [38, 'F_OFD_SETLKW'], [1024, 'F_SETLEASE'],
    [1025, 'F_GETLEASE'], [1026, 'F_NOTIFY'], [1030, 'F_DUPFD_CLOEXEC'], [1031, 'F_SETPIPE_SZ'],
    [1032, 'F_GETPIPE_SZ'], [1033, 'F_ADD_SEALS'], [1034, 'F_GET_SEALS'],
  ]),
  futex: sequence('FUTEX_WAIT FUTEX_WAKE FUTEX_FD FUTEX_REQUEUE FUTEX_CMP_REQUEUE FUTEX_WAKE_OP FUTEX_LOCK_PI ' +
    'FUTEX_UNLOCK_PI FUTEX_TRYLOCK_PI FUTEX_WAIT_BITSET FUTEX_WAKE_BITSET FUTEX_WAIT_REQUEUE_PI FUTEX_CMP_REQUEUE_PI FUTEX_LOCK_PI2'),
  clock: names([
    [0, 'CLOCK_REALTIME'], [1, 'CLOCK_MONOTONIC'], [2, 'CLOCK_PROCESS_CPUTIME_ID'], [3, 'CLOCK_THREAD_CPUTIME_ID'],
    [4, 'CLOCK_MONOTONIC_RAW'], [5, 'CLOCK_REALTIME_COARSE'], [6, 'CLOCK_MONOTONIC_COARSE'], [7, 'CLOCK_BOOTTIME'],
    [8, 'CLOCK_REALTIME_ALARM'], [9, 'CLOCK_BOOTTIME_ALARM'], [11, 'CLOCK_TAI'],
  ]),
  signal: new Map([...SIGNALS.split(' ').map((name, i): [number, string] => [i + 1, name]), ...Array.from({ length: 33 }, (_, i): [number, string] => [32 + i, i === 0 ? 'SIGRTMIN' : `SIGRT_${i}`])]),
  sighow: sequence('SIG_BLOCK SIG_UNBLOCK SIG_SETMASK'),
  arch_prctl: names([
    [0x1001, 'ARCH_SET_GS'], [0x1002, 'ARCH_SET_FS'], [0x1003, 'ARCH_GET_FS'], [0x1004, 'ARCH_GET_GS'],
    [0x1011, 'ARCH_GET_CPUID'], [0x1012, 'ARCH_SET_CPUID'], [0x1021, 'ARCH_GET_XCOMP_SUPP'],
    [0x1022, 'ARCH_GET_XCOMP_PERM'], [0x1023, 'ARCH_REQ_XCOMP_PERM'], [0x1024, 'ARCH_GET_XCOMP_GUEST_PERM'],
    [0x1025, 'ARCH_REQ_XCOMP_GUEST_PERM'], [0x5001, 'ARCH_SHSTK_ENABLE'], [0x5002, 'ARCH_SHSTK_DISABLE'],
    [0x5003, 'ARCH_SHSTK_LOCK'], [0x5005, 'ARCH_SHSTK_STATUS'],
  ]),
  madvise: names([
    [0, 'MADV_NORMAL'], [1, 'MADV_RANDOM'], [2, 'MADV_SEQUENTIAL'], [3, 'MADV_WILLNEED'], [4, 'MADV_DONTNEED'],
    [8, 'MADV_FREE'], [9, 'MADV_REMOVE'], [10, 'MADV_DONTFORK'], [11, 'MADV_DOFORK'], [12, 'MADV_MERGEABLE'],
    [13, 'MADV_UNMERGEABLE'], [14, 'MADV_HUGEPAGE'], [15, 'MADV_NOHUGEPAGE'], [16, 'MADV_DONTDUMP'],
    [17, 'MADV_DODUMP'], [18, 'MADV_WIPEONFORK'], [19, 'MADV_KEEPONFORK'], [20, 'MADV_COLD'], [21, 'MADV_PAGEOUT'],
    [22, 'MADV_POPULATE_READ'], [23, 'MADV_POPULATE_WRITE'], [24, 'MADV_DONTNEED_LOCKED'], [25, 'MADV_COLLAPSE'],
  ]),
  ioctl: names([
    [0x5401, 'TCGETS'], [0x5402, 'TCSETS'], [0x5403, 'TCSETSW'], [0x5404, 'TCSETSF'], [0x540f, 'TIOCGPGRP'],
    [0x5410, 'TIOCSPGRP'], [0x5413, 'TIOCGWINSZ'], [0x5414, 'TIOCSWINSZ'], [0x541b, 'FIONREAD'], [0x5421, 'FIONBIO'],
    [0x5450, 'FIONCLEX'], [0x5451, 'FIOCLEX'], [0x5452, 'FIOASYNC'],
  ]),
  rlimit: sequence('RLIMIT_CPU RLIMIT_FSIZE RLIMIT_DATA RLIMIT_STACK RLIMIT_CORE RLIMIT_RSS RLIMIT_NPROC RLIMIT_NOFILE ' +
    'RLIMIT_MEMLOCK RLIMIT_AS RLIMIT_LOCKS RLIMIT_SIGPENDING RLIMIT_MSGQUEUE RLIMIT_NICE RLIMIT_RTPRIO RLIMIT_RTTIME'),
};
