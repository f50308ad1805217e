// `tinyedge run` end to end: the C (and C++) programs in test/guests/, built as static glibc,
// static-pie glibc and static musl executables, run through the real CLI in a KVM guest. Each
// program checks its own results and prints what it checked, so the tests assert exact stdout,
// stderr and exit status; sandbox failures are one `tinyedge: ...` line with status 124 or 125.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ROOT, buildGuest, hasCompiler, type GuestVariant } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const BIN = join(ROOT, 'bin/tinyedge.js');
const KVM = needsKvm();
const STATIC_VARIANTS: GuestVariant[] = ['glibc', 'pie', 'musl'];
/** Each run spawns Node (~300 ms of start-up), so independent runs overlap. */
const CONCURRENCY = Math.max(2, availableParallelism());

const C_GUESTS = [
  'hello', 'streams', 'args_env', 'exit_code', 'stdio_flush', 'sysinfo', 'malloc_stress', 'mmap_large',
  'mmap_limit', 'big_bss', 'files', 'stdin_echo', 'clock', 'random', 'avx2', 'null_deref', 'stack_overflow',
  'cpu_exception', 'bad_pointers', 'big_output', 'spin',
];

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
  /** Wall time from spawn to exit, Node start-up included. */
  ms: number;
  /** Wall time from the program's first stdout bytes to exit (undefined without output). */
  sinceOutputMs: number | undefined;
}

interface RunOptions {
  /** tinyedge's own options (`--memory`, `--timeout`, `--env`, `--allow-read`), put before the program. */
  flags?: string[];
  stdin?: string | Buffer;
  /** Leave the program's stdin open (and empty) until it exits. */
  keepStdinOpen?: boolean;
}

/** `node bin/tinyedge.js run [flags] <program> [args]`, with stdin fed from `options.stdin`. */
function tinyedge(program: string, args: string[] = [], options: RunOptions = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [BIN, 'run', ...(options.flags ?? []), program, ...args], {
      stdio: 'pipe',
      timeout: 60_000,
      killSignal: 'SIGKILL',
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let firstOutput: number | undefined;
    child.stdout.on('data', (chunk: Buffer) => {
      firstOutput ??= performance.now();
      stdout.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.stdin.on('error', () => {}); // EPIPE: the program exited without reading all of its stdin
    if (!options.keepStdinOpen) child.stdin.end(options.stdin ?? '');
    child.on('error', reject);
    child.on('exit', () => child.stdin.destroy());
    child.on('close', (status, signal) =>
      resolve({
        status,
        signal,
        stdout: Buffer.concat(stdout),
        stderr: Buffer.concat(stderr).toString('utf8'),
        ms: performance.now() - started,
        sinceOutputMs: firstOutput === undefined ? undefined : performance.now() - firstOutput,
      }),
    );
  });
}

/** The run lasted at least the 300 ms limit, and ended within `budget` ms past it. */
function assertStoppedInTime(run: Run, budget: number): void {
  assert.ok(run.ms >= 300, `took only ${Math.round(run.ms)} ms`);
  assert.ok(run.sinceOutputMs !== undefined && run.sinceOutputMs < 300 + budget, `ended ${Math.round(run.sinceOutputMs ?? -1)} ms after the program's first output`);
}

/** The program ran to completion: exact stdout, stderr and exit status. */
function assertExit(run: Run, status: number, stdout: string, stderr = ''): void {
  assert.deepEqual(
    { status: run.status, signal: run.signal, stdout: run.stdout.toString('utf8'), stderr: run.stderr },
    { status, signal: null, stdout, stderr },
  );
}

/** tinyedge stopped the program: exact stdout so far, one `tinyedge:` line mentioning each pattern. */
function assertSandboxFailure(run: Run, status: 124 | 125, stdout: string, ...mentions: RegExp[]): void {
  assert.equal(run.status, status, `exit status; stderr: ${run.stderr}`);
  assert.equal(run.stdout.toString('utf8'), stdout);
  assert.match(run.stderr, /^tinyedge: [^\n]+\n?$/, 'stderr is exactly one line starting with "tinyedge: "');
  for (const mention of mentions) assert.match(run.stderr, mention);
}

const FAULT_ADDRESS = /\b0x[0-9a-f]+\b/i;
const FAULT_RIP = /\brip 0x[0-9a-f]+\b/i;

/** Every 0x... number in `text`, as BigInts (so padded and unpadded spellings compare equal). */
function hexNumbers(text: string): bigint[] {
  return [...text.matchAll(/\b0x([0-9a-f]+)\b/gi)].map((m) => BigInt(`0x${m[1] ?? ''}`));
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** What big_output.c prints: 131072 lines of 64 bytes, "%07d " then 55 of a-zA-Z0-9 from i % 62. */
function bigOutputPattern(): Buffer {
  const alphabet = Buffer.from('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789');
  const out = Buffer.alloc(131072 * 64);
  for (let i = 0; i < 131072; i++) {
    const line = i * 64;
    out.write(`${String(i).padStart(7, '0')} `, line, 'latin1');
    for (let j = 0; j < 55; j++) out[line + 8 + j] = alphabet[(i + j) % 62] ?? 0;
    out[line + 63] = 0x0a;
  }
  return out;
}

/** 1 MiB of deterministic binary data, zero bytes included. */
function binaryInput(): Buffer {
  const data = Buffer.alloc(1 << 20);
  let x = 0x2545f491;
  for (let i = 0; i < data.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    data[i] = x >>> 24;
  }
  return data;
}

/** The directory tree the file-policy tests open: only `allowed/` is passed to --allow-read. */
interface FileTree {
  root: string;
  allowed: string;
  data: string;
  secret: string;
  sibling: string;
  link: string;
}
const DATA = 'allowed content\nsecond line\n';
let tree: FileTree;

before(() => {
  const root = mkdtempSync(join(tmpdir(), 'tinyedge-run-'));
  const allowed = join(root, 'allowed');
  mkdirSync(allowed);
  mkdirSync(join(root, 'allowed-not')); // shares the prefix "allowed": a string-prefix check would let it through
  tree = {
    root,
    allowed,
    data: join(allowed, 'data.txt'),
    secret: join(root, 'secret.txt'),
    sibling: join(root, 'allowed-not', 'secret.txt'),
    link: join(allowed, 'link-to-secret'),
  };
  writeFileSync(tree.data, DATA); // writable by its owner: refusing to write must be the sandbox's doing
  writeFileSync(tree.secret, 'secret\n');
  writeFileSync(tree.sibling, 'secret too\n');
  symlinkSync('../secret.txt', tree.link);
  writeFileSync(join(root, 'not-an-elf'), '#!/bin/sh\necho this is a shell script, not an ELF file\n', { mode: 0o755 });
});

after(() => rmSync(tree.root, { recursive: true, force: true }));

/** Skips the suite when the compiler is missing on a developer machine; under CI that is a failure. */
function needsCompiler(variant: GuestVariant, cxx = false): { skip: string | false } {
  if (hasCompiler(variant, cxx)) return { skip: false };
  const what = `the ${cxx ? 'C++ ' : ''}compiler for ${variant} guests is not installed`;
  if (process.env.CI && !cxx) throw new Error(`${what} and CI is set`);
  return { skip: what };
}

for (const variant of STATIC_VARIANTS) {
  const compiler = needsCompiler(variant);
  describe(`tinyedge run: ${variant} guests`, { ...KVM, skip: KVM.skip || compiler.skip, concurrency: CONCURRENCY }, () => {
    const guests = new Map<string, string>();
    const guest = (name: string): string => {
      const path = guests.get(name);
      if (path === undefined) throw new Error(`guest ${name} was not built`);
      return path;
    };
    // Built up front: compiling blocks the event loop, which would skew the timings of runs in flight.
    const cxx = variant === 'musl' ? { skip: 'no C++ toolchain for musl' } : needsCompiler(variant, true);
    before(() => {
      for (const name of C_GUESTS) guests.set(name, buildGuest(name, variant));
      if (!cxx.skip) guests.set('cxx_exceptions', buildGuest('cxx_exceptions', variant));
    });

    test('hello world is printed and the exit status is 0', async () => {
      assertExit(await tinyedge(guest('hello')), 0, 'hello, world\n');
    });

    test("the program's stdout and stderr are the command's stdout and stderr", async () => {
      assertExit(
        await tinyedge(guest('streams')),
        0,
        'this line goes to stdout\nstdout again\n',
        'this line goes to stderr\nstderr again\n',
      );
    });

    test('arguments reach the program in order and the environment holds only the --env variables', async () => {
      const run = await tinyedge(guest('args_env'), ['first', 'two words', '', 'ünïcödé'], {
        flags: ['--env', 'GREETING=hello world', '--env', 'EMPTY=', '--env', 'EQUALS=a=b'],
      });
      assertExit(
        run,
        0,
        'argc=5\nargv[0] basename=<args_env>\nargv[1]=<first>\nargv[2]=<two words>\nargv[3]=<>\nargv[4]=<ünïcödé>\n' +
          'env[0]=<GREETING=hello world>\nenv[1]=<EMPTY=>\nenv[2]=<EQUALS=a=b>\nenvc=3\ngetenv(GREETING)=<hello world>\n',
      );
    });

    test("without --env the program's environment is empty", async () => {
      assertExit(await tinyedge(guest('args_env')), 0, 'argc=1\nargv[0] basename=<args_env>\nenvc=0\ngetenv(GREETING)=NULL\n');
    });

    test('arguments after the program that look like options are passed to the program', async () => {
      assertExit(
        await tinyedge(guest('args_env'), ['-n', '--timeout', '5']),
        0,
        'argc=4\nargv[0] basename=<args_env>\nargv[1]=<-n>\nargv[2]=<--timeout>\nargv[3]=<5>\nenvc=0\ngetenv(GREETING)=NULL\n',
      );
    });

    test('the exit status comes from return, exit, exit_group or exit, keeping its low 8 bits', async () => {
      const cases: Array<[number, string, number]> = [
        [0, 'return', 0],
        [1, 'exit', 1],
        [42, 'exit_group', 42],
        [255, 'return', 255],
        [256, 'exit_group', 0],
        [300, 'exit', 44],
        [7, 'exit_thread', 7],
      ];
      const runs = await Promise.all(cases.map(([status, how]) => tinyedge(guest('exit_code'), [String(status), how])));
      runs.forEach((run, i) => {
        const [status, how, expected] = cases[i] ?? [0, '', 0];
        assertExit(run, expected, `exiting with ${status} via ${how}\n`);
      });
    });

    test('buffered stdio output is flushed at exit, after the atexit handlers ran', async () => {
      let expected = '';
      for (let i = 0; i < 2000; i++) expected += `line ${String(i).padStart(4, '0')} of buffered output\n`;
      expected += 'last line, no newline\natexit handler ran';
      assertExit(await tinyedge(guest('stdio_flush')), 0, expected);
    });

    test('uname, getpid and the page size have sane values', async () => {
      assertExit(
        await tinyedge(guest('sysinfo')),
        0,
        'uname: Linux x86_64, release looks like a version\ngetpid: positive and stable\npage size: 4096\n',
      );
    });

    test('malloc, calloc, realloc and free survive 100000 operations with every block intact', async () => {
      assertExit(
        // Its own time limit: 100000 operations take seconds of page-fault exits on a loaded machine.
        await tinyedge(guest('malloc_stress'), [], { flags: ['--timeout', '55000'] }),
        0,
        'malloc stress: 100000 operations (37939 malloc, 5324 calloc, 14064 realloc, 42673 free), all blocks intact\n' +
          'peak live bytes: 13775334\n',
      );
    });

    test('a 32 MiB mmap is zero-filled and writable, and munmap gives it back for a second one', async () => {
      assertExit(
        await tinyedge(guest('mmap_large')),
        0,
        'mmap 32 MiB: zero-filled\nwrote and read back all 8192 pages: checksum 0566e0050c848000\n' +
          'munmap, then mmap 32 MiB again: zero-filled\n',
      );
    });

    test('mmap beyond --memory fails with ENOMEM in the guest and malloc returns NULL', async () => {
      assertExit(
        await tinyedge(guest('mmap_limit'), [], { flags: ['--memory', '64MiB'] }),
        0,
        'mmap 1 GiB: MAP_FAILED with ENOMEM\nmalloc 1 GiB: NULL\n' +
          'malloc 1 MiB blocks until NULL: stopped cleanly after at least 8\nafter freeing them, malloc 1 MiB: ok\n',
      );
    });

    test('a program whose 96 MiB .bss does not fit in the default 64 MiB exits 125 saying memory ran out', async () => {
      assertSandboxFailure(await tinyedge(guest('big_bss')), 125, '', /out of (guest )?memory|memory (is )?exhausted/i);
    });

    test('--memory 160MiB gives room for the same 96 MiB .bss', async () => {
      assertExit(await tinyedge(guest('big_bss'), [], { flags: ['--memory', '160MiB'] }), 0, 'touched all 24576 pages of a 96 MiB .bss\n');
    });

    test('a file under --allow-read can be read, and files outside it cannot be opened', async () => {
      const denied = [tree.secret, `${tree.allowed}/../secret.txt`, tree.sibling, '/etc/passwd', join(tree.allowed, 'missing.txt')];
      const run = await tinyedge(guest('files'), [`read:${tree.data}`, ...denied.map((path) => `deny:${path}`)], {
        flags: ['--allow-read', tree.allowed],
      });
      assertExit(run, 0, `read ${tree.data}: ${DATA.length} bytes:\n${DATA}` + denied.map((path) => `open ${path}: refused\n`).join(''));
    });

    test('a symbolic link under --allow-read that points outside it cannot be opened', async () => {
      const run = await tinyedge(guest('files'), [`deny:${tree.link}`], { flags: ['--allow-read', tree.allowed] });
      assertExit(run, 0, `open ${tree.link}: refused\n`);
    });

    test('files under --allow-read cannot be opened for writing, truncated or created', async () => {
      const created = join(tree.allowed, 'new.txt');
      const run = await tinyedge(guest('files'), [`nowrite:${tree.data}`, `nowrite:${created}`], {
        flags: ['--allow-read', tree.allowed],
      });
      assertExit(run, 0, `open ${tree.data} for writing: refused\nopen ${created} for writing: refused\n`);
      assert.equal(readFileSync(tree.data, 'utf8'), DATA);
      assert.equal(existsSync(created), false, `${created} was created`);
    });

    test('without --allow-read no file can be opened', async () => {
      assertExit(await tinyedge(guest('files'), [`deny:${tree.data}`]), 0, `open ${tree.data}: refused\n`);
    });

    test('1 MiB of binary stdin is read by the program unchanged', async () => {
      const input = binaryInput();
      const run = await tinyedge(guest('stdin_echo'), [], { stdin: input });
      assert.equal(run.stderr, 'stdin_echo: 1048576 bytes\n');
      assert.equal(run.stdout.length, input.length);
      assert.ok(run.stdout.equals(input), 'stdout differs from stdin');
      assert.equal(run.status, 0);
    });

    test('an empty stdin reads as end of file', async () => {
      assertExit(await tinyedge(guest('stdin_echo')), 0, '', 'stdin_echo: 0 bytes\n');
    });

    test('CLOCK_REALTIME matches the host, CLOCK_MONOTONIC never goes backwards and nanosleep sleeps', async () => {
      assertExit(
        await tinyedge(guest('clock'), [String(Date.now())]),
        0,
        'CLOCK_REALTIME: within 30 s of the host clock\ngettimeofday and time: agree with CLOCK_REALTIME\n' +
          'CLOCK_MONOTONIC: 1000 reads, never backwards\nnanosleep 20 ms: took between 20 ms and 2 s\n',
      );
    });

    test('getrandom gives different non-zero bytes on every call and in every run', async () => {
      const runs = await Promise.all([tinyedge(guest('random')), tinyedge(guest('random'))]);
      const samples = runs.map((run) => {
        assert.match(run.stderr, /^sample [0-9a-f]{64}\n$/);
        assertExit(run, 0, 'getrandom: 32 bytes twice, non-zero, different\nAT_RANDOM: 16 bytes, non-zero\n', run.stderr);
        return run.stderr;
      });
      assert.notEqual(samples[0], samples[1], 'two runs got the same random bytes');
    });

    test('AVX2 code computes what scalar code does and YMM registers survive a system call', async () => {
      assertExit(
        await tinyedge(guest('avx2')),
        0,
        'AVX2 dot product: fbe16d40, same as scalar\nAVX2 double sum: 2171862734.0, same as scalar\n' +
          'ymm8: unchanged across a system call\n',
      );
    });

    test('a NULL dereference is reported as a page fault at 0x0 and exits 125', async () => {
      const run = await tinyedge(guest('null_deref'));
      assertSandboxFailure(run, 125, 'reading through a NULL pointer\n', /page fault/i, /\b0x0+\b/, FAULT_RIP);
    });

    test('infinite recursion is reported as a fault and exits 125', async () => {
      const run = await tinyedge(guest('stack_overflow'));
      assertSandboxFailure(run, 125, 'recursing forever\n', /page fault|stack overflow/i, FAULT_ADDRESS, FAULT_RIP);
    });

    test('an undefined instruction is reported as an invalid opcode and exits 125', async () => {
      const run = await tinyedge(guest('cpu_exception'), ['ud2']);
      assertSandboxFailure(run, 125, 'executing ud2\n', /invalid opcode|#UD/i, FAULT_RIP);
    });

    test('a division by zero is reported as a divide error and exits 125', async () => {
      const run = await tinyedge(guest('cpu_exception'), ['divide']);
      assertSandboxFailure(run, 125, 'dividing by zero\n', /divide|#DE/i, FAULT_RIP);
    });

    test('a write to read-only data is reported as a page fault at that address and exits 125', async () => {
      const run = await tinyedge(guest('cpu_exception'), ['rodata']);
      const printed = /^writing to read-only data at (0x[0-9a-f]+)\n$/.exec(run.stdout.toString('utf8'));
      assert.ok(printed?.[1], `unexpected stdout: ${run.stdout.toString('utf8')}`);
      assertSandboxFailure(run, 125, printed[0], /page fault/i, FAULT_RIP);
      assert.ok(hexNumbers(run.stderr).includes(BigInt(printed[1])), `the message does not mention ${printed[1]}`);
    });

    test('bogus pointers passed to system calls fail with EFAULT and the program carries on', async () => {
      const calls = [
        'write(1, 0xdead0000, 10)',
        'write(1, NULL, 10)',
        'write(1, 0xffff800000000000, 10)',
        'write(1, 0x800000000000, 10)',
        'write(1, 0xfffffffffffff000, 10)',
        'write(1, 0xfffffffffffffff0, 32)',
        'write(1, buffer, 1 << 47)',
        'write(1, buffer, SIZE_MAX)',
        'read(0, 0xdead0000, 10)',
        'read(0, 0xffff800000000000, 10)',
        'writev(1, 0xdead0000, 1)',
        'writev(1, {0xdead0000, 10}, 1)',
        'clock_gettime(CLOCK_REALTIME, 0x1)',
        'clock_gettime(CLOCK_MONOTONIC, 0xffff800000000000)',
        'gettimeofday(0xdead0000, NULL)',
        'nanosleep(0xdead0000, NULL)',
        'uname(0xdead0000)',
        'getrandom(0xdead0000, 16, 0)',
        'openat(AT_FDCWD, 0xdead0000, O_RDONLY)',
        'fstat(1, 0xdead0000)',
        'newfstatat(1, "", 0xdead0000, AT_EMPTY_PATH)',
      ];
      const run = await tinyedge(guest('bad_pointers'), [], { stdin: 'still readable\n' });
      assertExit(
        run,
        0,
        calls.map((call) => `${call}: EFAULT\n`).join('') +
          'stdin after the failed reads: still readable\n' +
          `${calls.length} of ${calls.length} bogus pointers rejected with EFAULT\n`,
      );
    });

    test('8 MiB of output arrive intact', async () => {
      const run = await tinyedge(guest('big_output'));
      const expected = bigOutputPattern();
      assert.equal(run.stderr, 'big_output: wrote 8388608 bytes\n');
      assert.equal(run.stdout.length, expected.length);
      assert.equal(sha256(run.stdout), sha256(expected));
      assert.equal(run.status, 0);
    });

    test('a C++ program runs its global constructor and destructor, prints with iostream and catches an exception', cxx, async () => {
      assertExit(
        await tinyedge(guest('cxx_exceptions')),
        0,
        'global constructor ran\ncaught std::runtime_error: failed: not positive: -7\n' +
          'sum of 1..100 after reverse and sort: 5050\nglobal destructor ran\n',
      );
    });
  });
}

// One run at a time: concurrent Node start-ups would blur the measured wall time. The time past
// the deadline is measured from the program's first output (it prints, then loops or blocks), so
// Node's own start-up, which a loaded machine can stretch, does not count against the sandbox.
describe('tinyedge run: timeouts', { ...KVM, concurrency: 1 }, () => {
  // Wall time allowed past the deadline, counted from the program's first output: far more than a
  // working timer needs (tens of ms), far less than a timer that failed (the test's 60 s limit).
  const budget = 5000;
  for (const variant of STATIC_VARIANTS) {
    const compiler = needsCompiler(variant);
    let spin = '';
    before(() => {
      if (!compiler.skip) spin = buildGuest('spin', variant);
    });

    test(`an infinite loop (${variant}) is stopped by --timeout 300: exit 124 soon after the deadline`, compiler, async () => {
      const run = await tinyedge(spin, ['loop'], { flags: ['--timeout', '300'] });
      assertSandboxFailure(run, 124, 'spinning forever\n', /time/i);
      assertStoppedInTime(run, budget);
    });

    test(`a program (${variant}) sleeping in nanosleep is stopped by the timeout`, compiler, async () => {
      const run = await tinyedge(spin, ['sleep'], { flags: ['--timeout', '300'] });
      assertSandboxFailure(run, 124, 'sleeping for 100 s\n', /time/i);
      assertStoppedInTime(run, budget);
    });

    test(`a program (${variant}) blocked reading stdin is stopped by the timeout`, compiler, async () => {
      const run = await tinyedge(spin, ['stdin'], { flags: ['--timeout', '300'], keepStdinOpen: true });
      assertSandboxFailure(run, 124, 'waiting for stdin\n', /time/i);
      assertStoppedInTime(run, budget);
    });
  }
});

describe('tinyedge run: programs it refuses to run', { ...KVM, concurrency: CONCURRENCY }, () => {
  const gcc = needsCompiler('dynamic');

  test('a text file is refused as not an ELF file with exit 125', async () => {
    assertSandboxFailure(await tinyedge(join(tree.root, 'not-an-elf')), 125, '', /not an ELF/i);
  });

  test('a program that does not exist is refused with exit 125', async () => {
    assertSandboxFailure(await tinyedge(join(tree.root, 'no-such-program')), 125, '');
  });

  test('a dynamically linked PIE program is refused with exit 125, asking to link with -static', gcc, async () => {
    assertSandboxFailure(await tinyedge(buildGuest('hello', 'dynamic')), 125, '', /link with -static/);
  });

  test('a dynamically linked non-PIE program is refused with exit 125, asking to link with -static', gcc, async () => {
    assertSandboxFailure(await tinyedge(buildGuest('hello', 'dynamic', ['-no-pie'])), 125, '', /link with -static/);
  });
});
