// System-call arguments read as the kernel reads them, and bad ones answered with the kernel's
// errno, never a host exception: test/guests/hostile_args.c passes negative fds, ints with garbage
// in their upper 32 bits, negative and huge offsets, lengths and counts and a non-canonical FS
// base through raw syscall() and prints each answer. The expected lines are what Linux itself
// answers (the program run natively from / prints exactly these). Run in-process through
// Machine.boot(...).run() and end to end through `tinyedge run`, for glibc, static-pie and musl.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Kvm } from '../../src/kvm/kvm.ts';
import { CaptureStdio } from '../../src/sandbox/stdio.ts';
import { Machine } from '../../src/vmm/machine.ts';
import { ROOT, buildGuest, hasCompiler, type GuestVariant } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const BIN = join(ROOT, 'bin/tinyedge.js');
const VARIANTS: GuestVariant[] = ['glibc', 'pie', 'musl'];

/** What hostile_args prints, the same as on Linux (openat gives fd 3 with 0–2 open). */
const EXPECTED = `close(-1) = -9
fstat(-1) = -9
read(-1, NULL, 8) = -9
write(-1, NULL, 8) = -9
lseek(-1, 0, SEEK_SET) = -9
ioctl(-1, 0) = -9
fcntl(-1, F_GETFD) = -9
openat(AT_FDCWD, relative) = 3
read(fd, 5) = 5
lseek(fd, -1, SEEK_CUR) = 4
read(fd, 1) = 1
byte read = 4
lseek(fd, -5, SEEK_END) = 6
lseek(fd, -12, SEEK_END) = -22
lseek(fd, -1, SEEK_SET) = -22
lseek(fd, 0, 5) = -22
lseek(fd, 0, 1<<32 | SEEK_END) = 11
lseek(HI | fd, 2, SEEK_SET) = 2
pread64(fd, 8, -1) = -22
pread64(fd, 8, 1<<60) = 0
pread64(fd, 8, (1<<63) - 4) = -22
pread64(fd, 2, 3) = 2
bytes read = 34
fstat(HI | fd) = 0
readv(fd, 1<<32 | 1) = 3
readv(fd, 1025) = -22
readv(fd, {buf, -1}) = -22
readv(fd, {1<<60, 3}) = -14
openat(0xffffff9c, relative) = 4
close(HI | fd2) = 0
close(fd2) = -9
getpid with HI in rax: same
clock_gettime(1<<32 | CLOCK_MONOTONIC) = 0
mmap(fd, offset 1<<60) = mapped
mmap(fd, offset 1<<63) = -75
mmap(fd, offset -4096) = -75
mmap(fd, offset 1<<60 | 1) = -22
mmap(anonymous, length -1) = -12
mmap(length 0, fd -1) = -9
mmap(MAP_FIXED at 1<<60) = -12
munmap(1<<60, 4096) = -22
munmap(0x10000, -4096) = -22
mprotect(1<<60, 4096) = -12
madvise(0x10001, 10) = -22
close(fd) = 0
arch_prctl(ARCH_SET_FS, 0x800000000000) = -1
arch_prctl(ARCH_SET_FS, 0x7ffffffff000) = -1
arch_prctl(ARCH_SET_FS, -1) = -1
arch_prctl(ARCH_GET_FS) = 0
arch_prctl(ARCH_SET_FS, current) = 0
tkill(0, 0) = -22
tgkill(-1, 1, 0) = -22
kill(getpid(), 99) = -22
futex(0x10001, FUTEX_WAKE) = -22
rt_sigaction(SIGUSR1, sigsetsize 16) = -22
rt_sigprocmask(7, set, sigsetsize 8) = -22
sched_getaffinity(0, 1<<29) = -22
sched_getaffinity(0, 12) = -22
set_robust_list(0, 10) = -22
prlimit64(0, 99, NULL, NULL) = -22
getrlimit(HI | 99) = -22
getrandom(flags 8) = -22
readlink(bufsiz 0) = -22
clock_gettime(CLOCK_REALTIME, NULL) = -14
clock_gettime(10, NULL) = -22
nanosleep({-1, 0}) = -22
nanosleep({0, -1}) = -22
clock_nanosleep(CLOCK_MONOTONIC_RAW) = -95
still running
`;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** `tinyedge run [flags] <program> [args]` with an empty stdin. */
function tinyedge(flags: string[], program: string, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'run', ...flags, program, ...args], { stdio: 'pipe', timeout: 60_000, killSignal: 'SIGKILL' });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.stdin.end();
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') }));
  });
}

describe('system-call arguments: ints are 32 bits, longs 64, and bad values are errnos', needsKvm(), () => {
  let kvm: Kvm;
  let dir: string;
  let file: string;

  before(() => {
    kvm = new Kvm();
    dir = realpathSync(mkdtempSync(join(tmpdir(), 'tinyedge-args-')));
    file = join(dir, 'file.txt');
    writeFileSync(file, '0123456789\n');
  });

  after(() => {
    kvm.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** hostile_args's arguments: the file's absolute path, and its path relative to / (the guest's working directory). */
  const args = (): string[] => [file, relative('/', file)];

  test('in-process: every answer is the kernel\'s, and the program runs to its end', () => {
    const elf = readFileSync(buildGuest('hostile_args'));
    const stdio = new CaptureStdio(1 << 20);
    const m = Machine.boot(kvm, elf, { memoryMiB: 16, argv: ['hostile_args', ...args()], env: [], allowRead: [dir], stdio });
    try {
      assert.deepEqual(m.run(20_000), { kind: 'exit', status: 0 }, stdio.text());
    } finally {
      m.close();
    }
    assert.equal(stdio.stdout().toString('utf8'), EXPECTED);
  });

  for (const variant of VARIANTS) {
    test(`tinyedge run (${variant}): the same answers, exit status 0, nothing on stderr`, { skip: !hasCompiler(variant) && `no compiler for ${variant}` }, async () => {
      const run = await tinyedge(['--allow-read', dir], buildGuest('hostile_args', variant), args());
      assert.deepEqual(run, { status: 0, stdout: EXPECTED, stderr: '' });
    });
  }
});
