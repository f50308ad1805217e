// Guest threads under `tinyedge run`: C programs using pthreads (static glibc, static-pie glibc,
// static musl) compared with their native runs — stdout, exit status, the signal that ended them —
// plus what only tinyedge can answer: a deadlock ends at once as a fault, a thread bomb stops at
// the thread limit.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ROOT, buildGuest, hasCompiler, type GuestVariant } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const BIN = join(ROOT, 'bin/tinyedge.js');
const KVM = needsKvm();
const VARIANTS: GuestVariant[] = ['glibc', 'pie', 'musl'];

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `command` with `args` to its end (killed after 60 s) and collects what it printed. */
function execute(command: string, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000, killSignal: 'SIGKILL' });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (status, signal) => resolve({ status, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms: performance.now() - started }));
  });
}

const tinyedge = (program: string, args: string[] = [], flags: string[] = []): Promise<Run> => execute(process.execPath, [BIN, 'run', ...flags, program, ...args]);

/** The program under tinyedge behaves as natively: same stdout, same status, or the same signal as status 128 + n. */
async function assertAsNative(program: string, args: string[] = []): Promise<void> {
  const [native, ours] = await Promise.all([execute(program, args), tinyedge(program, args)]);
  assert.equal(native.stderr, '', 'the native run printed to stderr');
  assert.equal(ours.stdout, native.stdout);
  if (native.signal) {
    assert.equal(ours.status, 128 + constants.signals[native.signal]);
    assert.equal(ours.stderr, `tinyedge: program killed by ${native.signal}\n`);
  } else {
    assert.deepEqual({ status: ours.status, stderr: ours.stderr }, { status: native.status, stderr: '' });
  }
}

for (const variant of VARIANTS) {
  const compiler = hasCompiler(variant) ? { skip: false as const } : { skip: `no compiler for ${variant} guests` };
  if (compiler.skip && process.env.CI) throw new Error(`${compiler.skip} and CI is set`);
  describe(`threads under tinyedge run (${variant})`, { ...KVM, skip: KVM.skip || compiler.skip, concurrency: 2 }, () => {
    const built = new Map<string, string>();
    const guest = (name: string): string => built.get(name)!;
    before(() => {
      for (const name of ['threads', 'threads_hostile', 'threads_misbehave']) built.set(name, buildGuest(name, variant, ['-pthread']));
    });

    test("4 threads and a condition variable, join values, a contended counter, TLS, timed waits, robust mutexes, preemption and vector registers: as natively", async () => {
      await assertAsNative(guest('threads'));
    });

    test('hostile futex, clone, clone3, robust-list and tgkill calls get the answers Linux gives', async () => {
      await assertAsNative(guest('threads_hostile'));
    });

    test('exit ends one thread and the last one sets the status; exit_group from a thread ends all', async () => {
      await assertAsNative(guest('threads_misbehave'), ['leader-exit']);
      await assertAsNative(guest('threads_misbehave'), ['group-exit']);
    });

    test('a signal nothing handles, sent to another thread, ends the program; SIGURG is ignored', async () => {
      await assertAsNative(guest('threads_misbehave'), ['kill-other']);
      await assertAsNative(guest('threads_misbehave'), ['urg-other']);
    });

    test('two threads deadlocked on each other end at once as a deadlock fault, exit 125', async () => {
      const run = await tinyedge(guest('threads_misbehave'), ['abba'], ['--timeout', '30000']);
      assert.equal(run.stdout, "both locks taken, each thread now wants the other's\n");
      assert.equal(run.stderr, 'tinyedge: deadlock: all 2 threads wait on futexes with no timeout, and none can wake another\n');
      assert.equal(run.status, 125);
      assert.ok(run.ms < 15_000, `took ${Math.round(run.ms)} ms, not far short of the 30 s limit`);
    });

    test('a thread locking a plain mutex it holds is a deadlock too', async () => {
      const run = await tinyedge(guest('threads_misbehave'), ['relock'], ['--timeout', '30000']);
      assert.deepEqual(run, { ...run, status: 125, stdout: 'locked once, locking again\n', stderr: "tinyedge: deadlock: the program's only thread waits on a futex with no timeout, and nothing can wake it\n" });
    });

    test('a thread bomb gets EAGAIN at 64 threads, and the program joins them and starts another', async () => {
      const run = await tinyedge(guest('threads_misbehave'), ['bomb']);
      assert.deepEqual(run, { ...run, status: 0, stderr: '', stdout: 'created 63 threads, then EAGAIN\nall joined; a new thread can start: yes\n' });
    });
  });
}
