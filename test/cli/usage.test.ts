// The command line's usage errors: every bad option value, of every subcommand, is refused the
// same way as an unknown option or a missing argument — one line on stderr in commander's words,
// exit status 2 — and the parsers in src/cli/options.ts accept what they promise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { guestMemory, header, keyValue, port, positiveInt, size } from '../../src/cli/options.ts';
import { buildGuest, ROOT } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const BIN = join(ROOT, 'bin/tinyedge.js');

test('sizes on the command line are read as the config reads them: units, a bare number of bytes, guest memory from 10 MiB', () => {
  assert.equal(size('256MiB'), 256 * 1024 * 1024);
  assert.equal(size('1gib'), 1024 ** 3);
  assert.equal(size('1000'), 1000);
  for (const bad of ['64MB', '1G', '0', 'lots']) assert.throws(() => size(bad), InvalidArgumentError, bad);
  assert.equal(guestMemory('10MiB'), 10 * 1024 * 1024);
  assert.equal(guestMemory('10485760'), 10 * 1024 * 1024);
  assert.equal(guestMemory('4GiB'), 4 * 1024 ** 3);
  for (const bad of ['64', '8MiB', '11MiB', '8GiB', '64m']) assert.throws(() => guestMemory(bad), InvalidArgumentError, bad);
});

test('the smallest guest memory the options accept runs a program, given in MiB or in bytes', needsKvm(), () => {
  for (const memory of ['10MiB', '10485760']) {
    const r = spawnSync(process.execPath, [BIN, 'run', '--memory', memory, buildGuest('hello')], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'hello, world\n');
  }
});

test('positiveInt, port and keyValue accept what they promise and refuse the rest', () => {
  assert.equal(positiveInt('64'), 64);
  for (const bad of ['0', '-1', '1.5', 'abc', '', '1e400']) assert.throws(() => positiveInt(bad), InvalidArgumentError, bad);
  assert.equal(port('0'), 0);
  assert.equal(port('65535'), 65535);
  for (const bad of ['65536', '-1', '80.5', 'http']) assert.throws(() => port(bad), InvalidArgumentError, bad);
  assert.deepEqual(keyValue('B=2', ['A=1']), ['A=1', 'B=2']);
  assert.deepEqual(keyValue('EMPTY=', []), ['EMPTY=']);
  assert.throws(() => keyValue('NOEQUALS', []), InvalidArgumentError);
});

test('header takes NAME:VALUE with a token name and a value without control characters', () => {
  assert.deepEqual(header('Accept: text/html', [['A', '1']]), [['A', '1'], ['Accept', 'text/html']]);
  assert.deepEqual(header('X-Empty:', []), [['X-Empty', '']]);
  assert.deepEqual(header('X-Colons: a:b:c', []), [['X-Colons', 'a:b:c']]);
  for (const bad of ['no colon', ': no name', 'Bad Name: x', 'X-Bad: a\rb', 'X-Bad: a\nInjected: yes']) assert.throws(() => header(bad, []), InvalidArgumentError, bad);
});

for (const [args, message] of [
  [['run', '--memory', '0', 'prog'], /^error: option '--memory <size>' argument '0' is invalid\. expected an even number of MiB ≥ 10 \(e\.g\. "64MiB"\)\.$/],
  // A bare number meant MiB on the command line before; it is bytes now, as in the config file.
  [['run', '--memory', '64', 'prog'], /^error: option '--memory <size>' argument '64' is invalid\. expected an even number of MiB ≥ 10 \(e\.g\. "64MiB"\)\. A number without a unit is bytes: for 64 MiB write 64MiB\.$/],
  [['run', '--memory', '4MiB', 'prog'], /^error: option '--memory <size>' argument '4MiB' is invalid\. expected an even number of MiB ≥ 10 \(e\.g\. "64MiB"\)\.$/],
  [['bench', '--memory', '8GiB', 'prog'], /^error: option '--memory <size>' argument '8GiB' is invalid\. expected at most 4GiB\.$/],
  [['dev', '--memory', '64MB', 'prog'], /^error: option '--memory <size>' argument '64MB' is invalid\. expected a size in binary units \(KiB, MiB, GiB, TiB\); MB could mean powers of 1000 or of 1024\.$/],
  [['proxy', '--origin', 'http://127.0.0.1:1', '--memory', '64MB'], /^error: option '--memory <size>' argument '64MB' is invalid\. expected a size in binary units \(KiB, MiB, GiB, TiB\); MB could mean powers of 1000 or of 1024\.$/],
  [['run', '--timeout', 'soon', 'prog'], /^error: option '--timeout <ms>' argument 'soon' is invalid\. expected a positive integer\.$/],
  [['run', '--env', 'NOEQUALS', 'prog'], /^error: option '--env <KEY=VALUE>' argument 'NOEQUALS' is invalid\. expected KEY=VALUE\.$/],
  [['dev', '--port', '65536', 'prog'], /^error: option '--port <port>' argument '65536' is invalid\. expected a port, 0–65535\.$/],
  [['dev', '--memory', '-8', 'prog'], /^error: option '--memory <size>' argument '-8' is invalid\. expected an even number of MiB ≥ 10 \(e\.g\. "64MiB"\)\.$/],
  [['bench', '-n', 'many', 'prog'], /^error: option '-n <count>' argument 'many' is invalid\. expected a positive integer\.$/],
  [['bench', '--loads', '0', 'prog'], /^error: option '--loads <count>' argument '0' is invalid\. expected a positive integer\.$/],
  [['run', '--no-such-option', 'prog'], /^error: unknown option '--no-such-option'$/],
  [['dev', '--origin', 'ftp://example.test', 'prog'], /^error: option '--origin <url>' argument 'ftp:\/\/example.test' is invalid\. only http:\/\/ origins are supported\.$/],
  [['bench', '--header', 'X-Test', 'prog'], /^error: option '--header <name:value>' argument 'X-Test' is invalid\. expected NAME:VALUE, e\.g\. "Accept: text\/html"\.$/],
  [['dev', '--lifecycle', 'forever', 'prog'], /^error: option '--lifecycle <kind>' argument 'forever' is invalid\. expected ephemeral or persistent\.$/],
  [['dev', '--reset-after-requests', '3', 'prog'], /^error: --reset-after-requests needs --lifecycle persistent \(an ephemeral program is reset after every request\)$/],
  [['bench', '--lifecycle', 'ephemeral', '--reset-above-dirty', '1MiB', 'prog'], /^error: --reset-above-dirty needs --lifecycle persistent/],
  [['dev', '--warmup-path', '/x', 'prog'], /^error: --warmup-path needs --warmup N$/],
  [['dev', '--warmup', '2', '--warmup-path', 'x', 'prog'], /^error: option '--warmup-path <path>' argument 'x' is invalid\. expected a path starting with \/, e\.g\. \/hello\?x=1\.$/],
  [['dev'], /^tinyedge: name a program to serve, or a tenant with --config FILE --tenant NAME$/],
] as const) {
  test(`tinyedge ${args.join(' ')} is a usage error: one line, exit status 2`, () => {
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr.trimEnd(), message);
    assert.equal(r.stdout, '');
  });
}
