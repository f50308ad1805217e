// Programs whose output under `tinyedge run` must be what they print natively: a Rust std
// program (whose start-up polls fds 0–2 before main), a Go program (whose runtime reserves large
// PROT_NONE ranges, starts threads and waits in epoll), hostile pipe, eventfd and epoll calls,
// and hostile poll/ppoll calls. Each runs
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
import { nativeAndVm, runCommand, type Run } from '../helpers/native.ts';

/**
 * The setting docs/vmm.md recommends for Go: Go preempts goroutines with SIGURG, which tinyedge
 * ignores; with it, Go does not send them. The tests run with and without it.
 */
const GO_ENV = { GODEBUG: 'asyncpreemptoff=1' };

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
    // The panic message names the thread's id: the host's natively, 1 in the VM.
    const tidless = (r: Run): Run => ({ ...r, stderr: r.stderr.replace(/thread 'main' \(\d+\)/, "thread 'main' (TID)") });
    assert.deepEqual(tidless(vm), tidless(native));
    assert.equal(vm.status, 3);
    assert.match(vm.stdout, /^args: \["one", "two words"\]\n/);
    assert.match(vm.stdout, /stdin: 6 bytes, 3 lines\npanic caught: true\n$/);
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

  test('a Go CGI program answers in a request VM as it answers natively, request after request', async () => {
    const program = buildOtherGuest('go_cgi', 'go');
    const native = await runCommand(program, [], 'hello', { ...GO_ENV, REQUEST_METHOD: 'PUT', QUERY_STRING: 'a=1' });
    const [head, body] = native.stdout.split('\r\n\r\n');
    assert.equal(head, 'Status: 201 Created\r\nContent-Type: text/plain\r\nX-Go: yes');
    const kvm = new Kvm();
    const p = new Program(kvm, readFileSync(program), { mode: 'cgi', name: 'go_cgi', env: Object.entries(GO_ENV).map(([k, v]) => `${k}=${v}`) });
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
