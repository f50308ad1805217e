// Programs whose output under `tinyedge run` must be what they print natively: a Rust std
// program (whose start-up polls fds 0–2 before main) and one that overflows its main stack (std's
// SIGSEGV handler reports it), Go programs (whose runtime reserves large PROT_NONE ranges, starts
// threads, waits in epoll, preempts goroutines with SIGURG and turns faults into panics), hostile
// pipe, eventfd and epoll calls, and hostile poll/ppoll calls. Each runs
// natively and in the VM with the same arguments, the same stdin and the same (empty, or
// GODEBUG only) environment, and the two runs' stdout, stderr and exit status are compared. The
// Go program also answers as a CGI program in a request VM as it answers natively.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kvm } from '../../src/kvm/kvm.ts';
import { Program } from '../../src/sandbox/program.ts';
import { buildGuest, buildOtherGuest, hasCompiler, hasToolchain, type GuestVariant } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';
import { nativeAndVm, runCommand, runInVm, type Run } from '../helpers/native.ts';

/** Go without asynchronous preemption (no SIGURG to its threads): programs must run either way. */
const GO_ENV = { GODEBUG: 'asyncpreemptoff=1' };

/** Panic and overflow messages name the thread's id: the host's natively, 1 in the VM. */
const tidless = (r: Run): Run => ({ ...r, stderr: r.stderr.replace(/thread 'main' \(\d+\)/, "thread 'main' (TID)") });

/** Skips where a toolchain is missing on a developer machine; under CI (which installs Go) that is a failure. */
function needsToolchain(language: 'rust' | 'go', what: string): string | false {
  if (hasToolchain(language)) return false;
  if (process.env.CI && language === 'go') throw new Error(`${what} is not installed and CI is set`);
  return `${what} is not installed`;
}

describe('Rust std programs run as they do natively', { ...needsKvm(), skip: needsKvm().skip || needsToolchain('rust', 'rustc') }, () => {
  test('rust_std prints, reads stdin, catches a panic and exits 3, as natively', async () => {
    const program = buildOtherGuest('rust_std', 'rust');
    const { native, vm } = await nativeAndVm(program, ['one', 'two words'], 'a\nb\nc\n');
    assert.deepEqual(tidless(vm), tidless(native));
    assert.equal(vm.status, 3);
    assert.match(vm.stdout, /^args: \["one", "two words"\]\n/);
    assert.match(vm.stdout, /stdin: 6 bytes, 3 lines\npanic caught: true\n$/);
  });

  test('rust_overflow: std reports the main thread\'s stack overflow from its SIGSEGV handler and aborts (134), as natively', async () => {
    const { native, vm } = await nativeAndVm(buildOtherGuest('rust_overflow', 'rust'), [], 'ignore');
    assert.equal(native.signal, 'SIGABRT');
    assert.equal(vm.status, 134);
    assert.equal(vm.stdout, native.stdout);
    assert.equal(tidless(vm).stderr, `${tidless(native).stderr}tinyedge: program killed by SIGABRT\n`);
    assert.match(vm.stderr, /^\nthread 'main' \(1\) has overflowed its stack\nfatal runtime error: stack overflow/);
  });
});

describe('Go programs run as they do natively', { ...needsKvm(), skip: needsKvm().skip || needsToolchain('go', 'go') }, () => {
  for (const env of [{}, GO_ENV]) {
    test(`go_hello prints, uses goroutines, the GC and stdin, and exits 3, as natively (${JSON.stringify(env)})`, async () => {
      const program = buildOtherGuest('go_hello', 'go');
      const { native, vm } = await nativeAndVm(program, ['one', 'two words'], 'a\nb\nc\n', [], env);
      assert.equal(native.status, 3);
      assert.deepEqual(vm, native);
    });
  }

  test('go_signals: a goroutine spinning without calls is preempted (SIGURG), a nil dereference and a division by zero are recovered panics, as natively', async () => {
    const { native, vm } = await nativeAndVm(buildOtherGuest('go_signals', 'go'), [], 'ignore');
    assert.equal(native.status, 3, native.stderr);
    assert.deepEqual(vm, native);
  });

  test('go_signals without asynchronous preemption never gets past its sleep: the time limit ends it', async () => {
    const run = await runInVm(buildOtherGuest('go_signals', 'go'), [], 'ignore', ['--timeout', '2000'], GO_ENV);
    assert.deepEqual(run, { status: 124, signal: null, stdout: '', stderr: 'tinyedge: program ran past its 2000 ms time limit\n' });
  });

  test('a Go CGI program answers in a request VM as it answers natively, request after request', async () => {
    const program = buildOtherGuest('go_cgi', 'go');
    const native = await runCommand(program, [], 'hello', { REQUEST_METHOD: 'PUT', QUERY_STRING: 'a=1' });
    const [head, body] = native.stdout.split('\r\n\r\n');
    assert.equal(head, 'Status: 201 Created\r\nContent-Type: text/plain\r\nX-Go: yes');
    const kvm = new Kvm();
    const p = new Program(kvm, readFileSync(program), { mode: 'cgi', name: 'go_cgi' });
    try {
      const inst = p.instance();
      for (let i = 0; i < 3; i++) {
        const r = inst.handle({ method: 'PUT', url: '/go?a=1', headers: [['Content-Type', 'text/plain']], body: Buffer.from('hello') });
        assert.deepEqual([r.status, r.headers, r.body.toString()], [201, [['Content-Type', 'text/plain'], ['X-Go', 'yes']], body]);
      }
      inst.close();
    } finally {
      p.close();
      kvm.close();
    }
  });
});

describe('pipes, eventfds and epoll answer as Linux does', needsKvm(), () => {
  let dir: string;
  before(() => {
    dir = realpathSync(mkdtempSync(join(tmpdir(), 'tinyedge-events-')));
    writeFileSync(join(dir, 'file.txt'), 'a regular file\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const variant of ['glibc', 'pie', 'musl'] as GuestVariant[]) {
    test(`hostile_events (${variant}): the same lines as natively, stdin an empty pipe`, { skip: !hasCompiler(variant) && `no compiler for ${variant}` }, async () => {
      const program = buildGuest('hostile_events', variant, ['-pthread']);
      const { native, vm } = await nativeAndVm(program, [join(dir, 'file.txt')], '', ['--allow-read', dir]);
      assert.equal(native.status, 0, native.stderr);
      assert.deepEqual(vm, native);
      assert.match(vm.stdout, /\nthread's post woke epoll_wait: 1 \{0x1, 42\}\n/);
      assert.match(vm.stdout, /\nstill running\n$/);
    });
  }
});

describe('poll and ppoll answer as Linux does', needsKvm(), () => {
  let dir: string;
  before(() => {
    dir = realpathSync(mkdtempSync(join(tmpdir(), 'tinyedge-poll-')));
    writeFileSync(join(dir, 'file.txt'), 'a regular file\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const variant of ['glibc', 'pie', 'musl'] as GuestVariant[]) {
    test(`hostile_poll (${variant}): the same lines as natively, stdin from /dev/null`, { skip: !hasCompiler(variant) && `no compiler for ${variant}` }, async () => {
      const program = buildGuest('hostile_poll', variant);
      const { native, vm } = await nativeAndVm(program, [join(dir, 'file.txt')], 'ignore', ['--allow-read', dir]);
      assert.deepEqual(vm, native);
      assert.equal(vm.status, 0);
      assert.match(vm.stdout, /^poll\(stdio, no events, 0\) = 0 0 0 0\n/);
      assert.match(vm.stdout, /\nstill running\n$/);
    });
  }
});
