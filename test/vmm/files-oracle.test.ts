// The file policy is no oracle: a program allowed to read one directory must not learn what exists
// outside it. Every path-taking system call answers EACCES for a path that leads outside the
// allowed directories (through `..`, symlinks at any depth, absolute links), whether the target
// exists, is missing, is a file with more path after it, a directory, a symlink loop or a name too
// long; inside, the answers are the kernel's own (ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG, EROFS).
// test/guests/hostile_paths.c issues the calls raw and prints one line of results per path.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kvm } from '../../src/kvm/kvm.ts';
import { Machine } from '../../src/vmm/machine.ts';
import { CaptureStdio } from '../../src/sandbox/stdio.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const CALLS = ['open', 'openat', 'creat', 'stat', 'lstat', 'fstatat', 'nofollow', 'access', 'readlink', 'readlinkat'] as const;
const AT_CALLS = ['openat', 'fstatat', 'readlinkat'] as const;
type Results = Partial<Record<(typeof CALLS)[number], string>>;

/** The line hostile_paths prints for a path: every call answers `all`, except those in `but`. */
function line(all: string, but: Results = {}): string {
  return CALLS.map((call) => `${call}=${but[call] ?? all}`).join(' ');
}
const atLine = (all: string, but: Results = {}): string => AT_CALLS.map((call) => `${call}=${but[call] ?? all}`).join(' ');

/** What an existing regular file inside the allowed directory answers: links are never visible. */
const READABLE = line('OK', { creat: 'EROFS', readlink: 'EINVAL', readlinkat: 'EINVAL' });
const DENIED = line('EACCES');
const LONG_NAME = 'n'.repeat(300);

describe('file policy: nothing outside the allowed directories can be probed', needsKvm(), () => {
  let kvm: Kvm;
  let elf: Buffer;
  let root: string;
  let allowed: string;
  let outside: string;

  before(() => {
    kvm = new Kvm();
    elf = readFileSync(buildGuest('hostile_paths'));
    root = realpathSync(mkdtempSync(join(tmpdir(), 'tinyedge-oracle-')));
    allowed = join(root, 'allowed');
    outside = join(root, 'outside');
    mkdirSync(join(allowed, 'sub'), { recursive: true });
    mkdirSync(join(outside, 'dir'), { recursive: true });
    writeFileSync(join(allowed, 'file.txt'), 'inside\n');
    writeFileSync(join(allowed, 'sub', 'inner.txt'), 'inner\n');
    writeFileSync(join(outside, 'secret.txt'), 'secret\n');
    symlinkSync('loop', join(outside, 'loop'));
    symlinkSync('../outside', join(allowed, 'dirlink'));
    symlinkSync(outside, join(allowed, 'abslink'));
    symlinkSync('../outside/secret.txt', join(allowed, 'filelink'));
    symlinkSync('../outside/missing', join(allowed, 'deadlink'));
    symlinkSync('../outside/loop', join(allowed, 'outloop'));
    symlinkSync('loop', join(allowed, 'loop'));
    symlinkSync('sub', join(allowed, 'sublink'));
    symlinkSync('../allowed/file.txt', join(allowed, 'backlink')); // out to the parent and back in
    symlinkSync(join(allowed, 'file.txt'), join(allowed, 'absback'));
    symlinkSync('allowed', join(root, 'via')); // an allowed directory configured by a path through a link
  });

  after(() => {
    kvm.close();
    rmSync(root, { recursive: true, force: true });
  });

  /** Runs hostile_paths with `args`, only `allowRead` (by default `allowed`) readable; returns its stdout lines. */
  function probe(args: string[], allowRead = [allowed]): string[] {
    const stdio = new CaptureStdio(1 << 20);
    const m = Machine.boot(kvm, elf, { memoryMiB: 16, argv: ['hostile_paths', ...args], env: [], allowRead, stdio });
    try {
      assert.deepEqual(m.run(20_000), { kind: 'exit', status: 0 }, stdio.text());
    } finally {
      m.close();
    }
    return stdio.stdout().toString('utf8').split('\n').slice(0, -1);
  }

  /** Asserts each path's line, naming the path in the message. */
  function expect(cases: Array<[string, string]>): void {
    const lines = probe(cases.map(([path]) => path));
    assert.deepEqual(
      Object.fromEntries(cases.map(([path], i) => [path, lines[i]])),
      Object.fromEntries(cases.map(([path, want]) => [path, want])),
    );
  }

  test('paths through a symlink to outside answer EACCES, whatever exists there', () => {
    expect([
      ['allowed/dirlink/missing', DENIED],
      ['allowed/dirlink/secret.txt', DENIED],
      ['allowed/dirlink/secret.txt/x', DENIED],
      ['allowed/dirlink/dir', DENIED],
      ['allowed/dirlink/dir/missing', DENIED],
      ['allowed/dirlink/loop', DENIED],
      ['allowed/dirlink/loop/x', DENIED],
      [`allowed/dirlink/${LONG_NAME}`, DENIED],
      ['allowed/dirlink', DENIED],
      ['allowed/abslink/secret.txt', DENIED],
      ['allowed/abslink/missing', DENIED],
      ['allowed/filelink', DENIED],
      ['allowed/deadlink', DENIED],
      ['allowed/outloop', DENIED],
      ['allowed/dirlink/missing/../secret.txt', DENIED],
    ].map(([p, want]) => [join(root, p!), want!]));
  });

  test('paths outside by `..` or by absolute path answer EACCES, whatever exists there', () => {
    expect([
      [`${allowed}/../outside/secret.txt`, DENIED],
      [`${allowed}/../outside/missing`, DENIED],
      [`${allowed}/../outside/secret.txt/x`, DENIED],
      [`${allowed}/../outside/loop`, DENIED],
      [join(outside, 'secret.txt'), DENIED],
      [join(outside, 'missing'), DENIED],
      [join(outside, LONG_NAME), DENIED],
      [join(root, 'missing', 'x'), DENIED],
      [`${allowed}-not/secret.txt`, DENIED], // shares the prefix "allowed"
      ['/etc/passwd', DENIED],
      ['/no-such-dir/x', DENIED],
      [`/${LONG_NAME}`, DENIED],
      ['/', DENIED],
      [root, DENIED],
    ]);
  });

  test('relative to a dirfd, paths through a symlink to outside answer EACCES', () => {
    const file = join(allowed, 'file.txt');
    const lines = probe(['dirlink/secret.txt', 'dirlink/missing', 'dirlink/secret.txt/x', '../outside/secret.txt', '../outside/missing', 'sub/inner.txt', 'missing'].map((rel) => `at:${file}:${rel}`));
    assert.deepEqual(lines, [
      ...Array<string>(5).fill(atLine('EACCES')),
      atLine('OK', { readlinkat: 'EINVAL' }),
      atLine('ENOENT'),
    ]);
  });

  test('inside the allowed directory the errors stay precise', () => {
    const notDir = line('ENOTDIR');
    expect([
      ['file.txt', READABLE],
      ['missing', line('ENOENT', { creat: 'EROFS' })],
      ['missing/x', line('ENOENT')],
      ['file.txt/x', notDir],
      ['file.txt/x/y', notDir],
      ['loop', line('ELOOP')],
      ['loop/x', line('ELOOP')],
      [LONG_NAME, line('ENAMETOOLONG')],
      ['sub', line('OK', { open: 'EISDIR', openat: 'EISDIR', creat: 'EISDIR', readlink: 'EINVAL', readlinkat: 'EINVAL' })],
      ['sub/inner.txt', READABLE],
      ['sublink/inner.txt', READABLE],
      ['backlink', READABLE],
      ['absback', READABLE],
    ].map(([p, want]) => [join(allowed, p!), want!]));
  });

  test('an allowed directory configured through a link is readable by that path, and still no oracle', () => {
    const via = join(root, 'via');
    const lines = probe([`${via}/file.txt`, `${via}/sublink/inner.txt`, `${via}/missing`, `${via}/dirlink/secret.txt`, `${via}/dirlink/missing`, `${root}/missing/file.txt`], [via]);
    assert.deepEqual(lines, [READABLE, READABLE, line('ENOENT', { creat: 'EROFS' }), DENIED, DENIED, DENIED]);
  });

  test('a path longer than PATH_MAX answers ENAMETOOLONG without looking anything up', () => {
    assert.deepEqual(probe(['long:5000']), [line('ENAMETOOLONG')]);
  });
});
