// Programs whose output under `tinyedge run` must be what they print natively: a Rust std
// program (whose start-up polls fds 0–2 before main), and hostile poll/ppoll calls. Each runs
// natively and in the VM with the same arguments, the same stdin and an empty environment, and
// the two runs' stdout, stderr and exit status are compared.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type StdioOptions } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, buildGuest, buildOtherGuest, hasCompiler, hasToolchain, type GuestVariant } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const BIN = join(ROOT, 'bin/tinyedge.js');

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `command` with `args`, an empty environment, stdin from `stdin` (a string, or 'ignore'
 * for /dev/null) and stdout and stderr to pipes.
 */
function run(command: string, args: string[], stdin: string | 'ignore'): Promise<Run> {
  return new Promise((resolve, reject) => {
    const stdio: StdioOptions = [stdin === 'ignore' ? 'ignore' : 'pipe', 'pipe', 'pipe'];
    const child = spawn(command, args, { stdio, env: {}, timeout: 60_000, killSignal: 'SIGKILL' });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => err.push(c));
    if (child.stdin) child.stdin.end(stdin);
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
  });
}

/** The program natively and under `tinyedge run [flags]`: both runs. */
async function both(program: string, args: string[], stdin: string | 'ignore', flags: string[] = []): Promise<{ native: Run; vm: Run }> {
  const native = await run(program, args, stdin);
  const vm = await run(process.execPath, [BIN, 'run', ...flags, program, ...args], stdin);
  return { native, vm };
}

describe('Rust std programs run as they do natively', { ...needsKvm(), skip: needsKvm().skip || (!hasToolchain('rust') && 'rustc is not installed') }, () => {
  test('rust_std prints, reads stdin, catches a panic and exits 3, as natively', async () => {
    const program = buildOtherGuest('rust_std', 'rust');
    const { native, vm } = await both(program, ['one', 'two words'], 'a\nb\nc\n');
    // The panic message names the thread's id: the host's natively, 1 in the VM.
    const tidless = (r: Run): Run => ({ ...r, stderr: r.stderr.replace(/thread 'main' \(\d+\)/, "thread 'main' (TID)") });
    assert.deepEqual(tidless(vm), tidless(native));
    assert.equal(vm.status, 3);
    assert.match(vm.stdout, /^args: \["one", "two words"\]\n/);
    assert.match(vm.stdout, /stdin: 6 bytes, 3 lines\npanic caught: true\n$/);
  });
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
      const { native, vm } = await both(program, [join(dir, 'file.txt')], 'ignore', ['--allow-read', dir]);
      assert.deepEqual(vm, native);
      assert.equal(vm.status, 0);
      assert.match(vm.stdout, /^poll\(stdio, no events, 0\) = 0 0 0 0\n/);
      assert.match(vm.stdout, /\nstill running\n$/);
    });
  }
});
