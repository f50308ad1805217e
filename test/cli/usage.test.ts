// The command line's usage errors: every bad option value, of every subcommand, is refused the
// same way as an unknown option or a missing argument — one line on stderr in commander's words,
// exit status 2 — and the parsers in src/cli/options.ts accept what they promise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { header, keyValue, port, positiveInt } from '../../src/cli/options.ts';
import { ROOT } from '../helpers/guests.ts';

const BIN = join(ROOT, 'bin/tinyedge.js');

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
  [['run', '--memory', '0', 'prog'], /^error: option '--memory <MiB>' argument '0' is invalid\. expected a positive integer\.$/],
  [['run', '--timeout', 'soon', 'prog'], /^error: option '--timeout <ms>' argument 'soon' is invalid\. expected a positive integer\.$/],
  [['run', '--env', 'NOEQUALS', 'prog'], /^error: option '--env <KEY=VALUE>' argument 'NOEQUALS' is invalid\. expected KEY=VALUE\.$/],
  [['dev', '--port', '65536', 'prog'], /^error: option '--port <port>' argument '65536' is invalid\. expected a port, 0–65535\.$/],
  [['dev', '--memory', '-8', 'prog'], /^error: option '--memory <MiB>' argument '-8' is invalid\. expected a positive integer\.$/],
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
