// `tinyedge run --trace`: every system call decoded strace-style on stderr, the program's own
// output untouched; a fault names the function at RIP, walks the frame pointers back to main and
// shows the code bytes there. Without --trace a fault still names the function at RIP. The
// symbol table comes from the program's ELF file, which is the tenant's: a corrupt one is ignored.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSymbols, type SymbolTable, symbolize } from '../../src/vmm/linux/symbols.ts';
import { buildGuest, type GuestVariant, hasCompiler, ROOT } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const BIN = join(ROOT, 'bin/tinyedge.js');

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function tinyedgeRun(args: string[]): Run {
  const r = spawnSync(process.execPath, [BIN, 'run', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function native(program: string): Run {
  const r = spawnSync(program, [], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The trace's lines in `stderr` (everything but tinyedge's own `tinyedge: ` line and the program's stderr). */
const lines = (stderr: string): string[] => stderr.split('\n');

describe('tinyedge run --trace', needsKvm(), () => {
  test('decodes each system call with its arguments and result, and leaves the program\'s output as it is natively', () => {
    const program = buildGuest('trace_calls');
    const run = tinyedgeRun(['--trace', program]);
    assert.equal(run.status, 3, run.stderr);
    const out = lines(run.stderr);
    const expect = (line: string): void => assert.ok(out.includes(line), `no line ${line} in:\n${run.stderr}`);
    // The denied file: the path read from guest memory, the flags by name, the errno by name.
    expect('openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = -1 EACCES (Permission denied)');
    // A call tinyedge does not implement is named as such; so is a number x86-64 does not use.
    expect('socket(2, 1, 0) = -1 ENOSYS (not implemented by tinyedge)');
    assert.ok(out.some((l) => /^syscall_1000\(0x1, 0x2, 0x[0-9a-f]+, 0x[0-9a-f]+, 0x[0-9a-f]+, 0x[0-9a-f]+\) = -1 ENOSYS \(not implemented by tinyedge\)$/.test(l)), run.stderr);
    // Bad pointers print as their address, exactly, even past 2^53.
    expect('write(1, 0xdead0000, 10) = -1 EFAULT (Bad address)');
    expect('write(1, 0xffffffffffffffff, 18446744073709551615) = -1 EFAULT (Bad address)');
    expect('openat(AT_FDCWD, 0x10, O_RDONLY) = -1 EFAULT (Bad address)');
    // Strings are escaped, and cut after 64 bytes; a mode shows only with O_CREAT.
    expect('write(2, "tab\\there \\"quoted\\"\\n", 18) = 18');
    expect(`open("/${'a'.repeat(63)}"..., O_WRONLY|O_CREAT|O_TRUNC, 0644) = -1 EACCES (Permission denied)`);
    assert.ok(out.some((l) => /^mmap\(NULL, 8192, PROT_READ\|PROT_WRITE, MAP_PRIVATE\|MAP_ANONYMOUS, -1, 0\) = 0x[0-9a-f]+$/.test(l)), run.stderr);
    // The end: no result, then how the program ended.
    assert.deepEqual(out.slice(-3), ['exit_group(3) = ?', '+++ exited with 3 +++', '']);

    // stdout is the program's alone; its stderr is there too, between the trace lines.
    const plain = tinyedgeRun([program]);
    assert.equal(run.stdout, plain.stdout);
    assert.equal(plain.stderr, 'tab\there "quoted"\n');
    expect('tab\there "quoted"');
  });

  test('a NULL dereference names main at RIP, shows the code bytes there, and starts the backtrace at main', () => {
    const run = tinyedgeRun(['--trace', buildGuest('null_deref')]);
    assert.equal(run.status, 125);
    assert.equal(run.stdout, 'reading through a NULL pointer\n');
    const out = lines(run.stderr);
    const at = out.findIndex((l) => l.startsWith('--- page fault at 0x0 '));
    assert.ok(at >= 0, run.stderr);
    assert.match(out[at]!, /^--- page fault at 0x0 \(rip 0x[0-9a-f]+ in main\+0x[0-9a-f]+\): read of unmapped memory \(NULL pointer dereference\) ---$/);
    assert.match(out[at + 1]!, /^ {4}code at rip: ([0-9a-f]{2} ){15}[0-9a-f]{2}$/);
    assert.match(out[at + 2]!, /^ {4}#0 0x[0-9a-f]+ in main\+0x[0-9a-f]+$/);
    assert.match(out.at(-2)!, /^tinyedge: page fault at 0x0 \(rip 0x[0-9a-f]+ in main\+0x[0-9a-f]+\)/);
  });

  test('the code bytes at RIP are the instruction that faulted, read from the program file', () => {
    const program = buildGuest('null_deref');
    const run = tinyedgeRun(['--trace', program]);
    const rip = Number(/rip (0x[0-9a-f]+) in/.exec(run.stderr)![1]);
    const code = /code at rip: ([0-9a-f ]+)/.exec(run.stderr)![1]!.split(' ').map((b) => parseInt(b, 16));
    // A non-PIE glibc program: file offset = address - segment address + segment offset.
    const dump = execFileSync('objdump', ['-d', '--start-address', String(rip), '--stop-address', String(rip + 1), program], { encoding: 'utf8' });
    const first = new RegExp(`^\\s*${rip.toString(16)}:\\s+((?:[0-9a-f]{2} )+)`, 'm').exec(dump);
    assert.ok(first, dump);
    const bytes = first[1]!.trim().split(' ').map((b) => parseInt(b, 16));
    assert.deepEqual(code.slice(0, bytes.length), bytes);
  });

  for (const variant of ['glibc', 'pie', 'musl'] as GuestVariant[]) {
    test(`the backtrace walks the frame pointers from inner to outer to main (${variant})`, { skip: !hasCompiler(variant) && `${variant} compiler not installed` }, () => {
      const run = tinyedgeRun(['--trace', buildGuest('fault_frames', variant, ['-O0', '-fno-omit-frame-pointer'])]);
      assert.equal(run.status, 125);
      const frames = lines(run.stderr).filter((l) => /^ {4}#\d+ /.test(l));
      assert.match(frames[0]!, /^ {4}#0 0x[0-9a-f]+ in inner\+0x[0-9a-f]+$/);
      assert.match(frames[1]!, /^ {4}#1 0x[0-9a-f]+ in outer\+0x[0-9a-f]+$/);
      assert.match(frames[2]!, /^ {4}#2 0x[0-9a-f]+ in main\+0x[0-9a-f]+$/);
      assert.ok(frames.length <= 32);
    });
  }

  test('without --trace: no trace lines, and the fault message still names the function at RIP', () => {
    const run = tinyedgeRun([buildGuest('fault_frames', 'pie', ['-O0', '-fno-omit-frame-pointer'])]);
    assert.equal(run.status, 125);
    assert.equal(run.stdout, 'faulting in inner\n');
    assert.match(run.stderr, /^tinyedge: page fault at 0x0 \(rip 0x[0-9a-f]+ in inner\+0x[0-9a-f]+\): write of unmapped memory \(NULL pointer dereference\)\n$/);
  });

  test('a stripped program faults with the bare RIP, as before symbols', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tinyedge-trace-'));
    const stripped = join(dir, 'null_deref');
    copyFileSync(buildGuest('null_deref'), stripped);
    execFileSync('strip', [stripped]);
    const run = tinyedgeRun(['--trace', stripped]);
    assert.equal(run.status, 125);
    assert.match(run.stderr, /^--- page fault at 0x0 \(rip 0x[0-9a-f]+\): read .* ---\n {4}code at rip: [0-9a-f ]+\n {4}#0 0x[0-9a-f]+\n/m);
  });

  test('an SDK program is told to use dev: its wait call shows in the trace, and the run exits 125', () => {
    const run = tinyedgeRun(['--trace', buildGuest('sdk_stdout')]);
    assert.equal(run.status, 125);
    const out = lines(run.stderr);
    assert.ok(out.includes('te_wait(NULL, abi_version=2) <unfinished ...>'), run.stderr);
    assert.equal(out.at(-2), 'tinyedge: program waits for requests (te_wait_for_requests): it is an SDK program, which answers HTTP requests; serve it with `tinyedge dev`');
    // What it printed before waiting is its stdout, as with any program run.
    assert.equal(run.stdout, 'stdout: initialised\n');
    assert.equal(tinyedgeRun([buildGuest('sdk_stdout')]).status, 125);
  });

  test('natively the programs behave as the tests above expect', () => {
    assert.equal(native(buildGuest('trace_calls')).status, 3);
    assert.equal(native(buildGuest('fault_frames', 'glibc', ['-O0', '-fno-omit-frame-pointer'])).stdout, 'faulting in inner\n');
  });
});

/** The address of function `name` in `table`. */
function addressOf(table: SymbolTable, name: string): number {
  const at = table.addrs.find((addr) => symbolize(table, addr) === name);
  assert.ok(at !== undefined, `no function ${name}`);
  return at;
}

describe('ELF symbols', () => {
  test('function symbols of a static-PIE move with the load address, and name addresses inside them', () => {
    const elf = readFileSync(buildGuest('fault_frames', 'pie', ['-O0', '-fno-omit-frame-pointer']));
    const at0 = readSymbols(elf, 0);
    const moved = readSymbols(elf, 0x40_0000);
    assert.ok(at0 && moved);
    const mainAt = addressOf(at0, 'main');
    assert.equal(symbolize(moved, mainAt + 0x40_0000), 'main');
    assert.equal(symbolize(moved, mainAt + 0x40_0000 + 5), 'main+0x5');
    assert.equal(symbolize(moved, 0x10), undefined);
  });

  test('a corrupt section table or symbol table is ignored, never a crash', () => {
    const elf = readFileSync(buildGuest('null_deref'));
    const shoff = Number(elf.readBigUInt64LE(40));
    const variants: Array<[string, (b: Buffer) => void]> = [
      ['section headers past the end', (b) => b.writeBigUInt64LE(BigInt(b.length), 40)],
      ['a huge section header offset', (b) => b.writeBigUInt64LE(0xffff_ffff_ffff_fff0n, 40)],
      ['65535 section headers', (b) => b.writeUInt16LE(0xffff, 60)],
      ['a wrong section header size', (b) => b.writeUInt16LE(63, 58)],
    ];
    // Every section that is a symbol table gets a symbol table past the end, then a string table link out of range.
    const shnum = elf.readUInt16LE(60);
    const symtabs = [...Array(shnum).keys()].filter((i) => elf.readUInt32LE(shoff + i * 64 + 4) === 2);
    assert.equal(symtabs.length, 1);
    const sh = shoff + symtabs[0]! * 64;
    variants.push(['symbols past the end', (b) => b.writeBigUInt64LE(BigInt(b.length - 10), sh + 24)]);
    variants.push(['a symbol table size of 2^63', (b) => b.writeBigUInt64LE(1n << 63n, sh + 32)]);
    variants.push(['a string table link out of range', (b) => b.writeUInt32LE(0xffff, sh + 40)]);
    for (const [what, corrupt] of variants) {
      const copy = Buffer.from(elf);
      corrupt(copy);
      assert.equal(readSymbols(copy, 0), undefined, what);
    }
    // Names pointing past the string table are skipped; the rest stay.
    const names = Buffer.from(elf);
    const symOff = Number(names.readBigUInt64LE(sh + 24));
    for (let s = symOff; s < symOff + Number(names.readBigUInt64LE(sh + 32)); s += 24) names.writeUInt32LE(0xffff_fff0, s);
    assert.equal(readSymbols(names, 0), undefined);
  });

  test('symbol names are printed without control characters', () => {
    const elf = Buffer.from(readFileSync(buildGuest('null_deref')));
    const main = addressOf(readSymbols(elf, 0)!, 'main');
    // Make the name of main (in the string table the symbol table links to) "m\x1bin".
    const shoff = Number(elf.readBigUInt64LE(40));
    const symtab = [...Array(elf.readUInt16LE(60)).keys()].map((i) => shoff + i * 64).find((sh) => elf.readUInt32LE(sh + 4) === 2)!;
    const strtab = Number(elf.readBigUInt64LE(shoff + elf.readUInt32LE(symtab + 40) * 64 + 24));
    const symOff = Number(elf.readBigUInt64LE(symtab + 24));
    const nameOf = (s: number): number => strtab + elf.readUInt32LE(s);
    let sym = symOff;
    while (elf.subarray(nameOf(sym), nameOf(sym) + 5).toString('latin1') !== 'main\0') sym += 24;
    const at = nameOf(sym) + 1;
    elf[at] = 0x1b;
    assert.equal(symbolize(readSymbols(elf, 0), main), 'm?in');
  });
});
