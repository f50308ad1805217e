// The C SDK's query-string and percent-decoding helpers (te_query_param, te_percent_decode) on
// hostile input, run in a request VM: what the client sends arrives in the guest as it was sent.
// The guest answers "r=<result> value=<buffer> guard=<the 16 bytes past the capacity untouched?>".
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Kvm } from '../../src/kvm/kvm.ts';
import { Program } from '../../src/sandbox/program.ts';
import { type Instance } from '../../src/sandbox/instance.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const EINVAL = -22;
const ENOENT = -2;
const ENOSPC = -28;

describe('query and percent-decoding helpers', needsKvm(), () => {
  let kvm: Kvm;
  let program: Program;
  let inst: Instance;
  before(() => {
    kvm = new Kvm();
    program = new Program(kvm, readFileSync(buildGuest('sdk_query')), { mode: 'sdk', name: 'sdk_query' });
    inst = program.instance();
  });
  after(() => {
    inst.close();
    program.close();
    kvm.close();
  });

  const ask = (path: string, query: string, headers: Record<string, string>): string => {
    const r = inst.handle({ method: 'GET', url: `${path}?${query}`, headers: [['Host', 'test'], ...Object.entries(headers)], body: new Uint8Array(0) });
    return r.body.toString('latin1');
  };
  const param = (query: string, name: string, cap = 64): string => ask('/param', query, { 'X-Name': name, 'X-Cap': String(cap) });
  const decode = (query: string, flags = '', cap = 64): string => ask('/decode', query, { 'X-Flags': flags, 'X-Cap': String(cap) });
  const answer = (r: number, value: string): string => `r=${r} value=${value} guard=ok\n`;

  test('a parameter is found by name among others and its value decoded, escapes and + included', () => {
    assert.equal(param('a=1&name=hello%20w%6Frld&b=2', 'name'), answer(11, 'hello world'));
    assert.equal(param('q=a+b%2Bc', 'q'), answer(5, 'a b+c'));
    assert.equal(param('path=%2f%2F', 'path'), answer(2, '//'));
    assert.equal(param('word=%C3%A9t%C3%A9', 'word'), answer(5, '\\xc3\\xa9t\\xc3\\xa9'));
  });

  test('names are decoded and matched whole: a prefix or a longer name is another parameter', () => {
    assert.equal(param('na%6De=x', 'name'), answer(1, 'x'));
    assert.equal(param('first+name=Ada', 'first name'), answer(3, 'Ada'));
    assert.equal(param('names=1&nam=2&name=3', 'name'), answer(1, '3'));
    assert.equal(param('names=1&nam=2', 'name'), answer(ENOENT, ''));
  });

  test('the first of repeated parameters counts; a name without = has the empty value; empty pairs are skipped', () => {
    assert.equal(param('k=1&k=2', 'k'), answer(1, '1'));
    assert.equal(param('&&flag&k=v&', 'flag'), answer(0, ''));
    assert.equal(param('&&flag&k=v&', 'k'), answer(1, 'v'));
    assert.equal(param('k==v', 'k'), answer(2, '=v'));
    assert.equal(param('', 'k'), answer(ENOENT, ''));
    assert.equal(param('k=1', ''), answer(ENOENT, ''));
  });

  test('a truncated or malformed escape is -EINVAL and leaves an empty string', () => {
    for (const q of ['v=abc%', 'v=abc%4', 'v=%zz', 'v=%4g', 'v=%%41', 'v=%-1']) {
      assert.equal(param(q, 'v'), answer(EINVAL, ''), q);
    }
    // A name with a bad escape never matches; the parameter after it is still found.
    assert.equal(param('v%=1&v=2', 'v'), answer(1, '2'));
  });

  test('%00 in a value is -EINVAL for the C-string helper, and decodes to a NUL byte only when asked for', () => {
    assert.equal(param('v=admin%00.jpg', 'v'), answer(EINVAL, ''));
    assert.equal(decode('admin%00.jpg'), answer(EINVAL, ''));
    assert.equal(decode('admin%00.jpg', 'n'), answer(10, 'admin\\x00.jpg'));
  });

  test('a value longer than the buffer is -ENOSPC, never written past the capacity', () => {
    const long = 'x'.repeat(5000);
    assert.equal(param(`v=${long}`, 'v', 64), answer(ENOSPC, ''));
    assert.equal(param(`v=${'%41'.repeat(100)}`, 'v', 64), answer(ENOSPC, ''));
    // Exactly fits: 63 bytes and the NUL; one more does not.
    assert.equal(param(`v=${'y'.repeat(63)}`, 'v', 64), answer(63, 'y'.repeat(63)));
    assert.equal(param(`v=${'y'.repeat(64)}`, 'v', 64), answer(ENOSPC, ''));
    assert.equal(param('v=', 'v', 1), answer(0, ''));
    assert.equal(param('v=a', 'v', 1), answer(ENOSPC, ''));
  });

  test('a buffer of no bytes gets nothing written, found or not', () => {
    assert.equal(param('v=', 'v', 0), answer(ENOSPC, ''));
    assert.equal(param('w=1', 'v', 0), answer(ENOENT, ''));
    assert.equal(decode('', '', 0), answer(ENOSPC, ''));
  });

  test('plain decoding keeps + unless told it is form encoding', () => {
    assert.equal(decode('a+b%20c'), answer(5, 'a+b c'));
    assert.equal(decode('a+b%20c', 'p'), answer(5, 'a b c'));
    assert.equal(decode('%7e%7E'), answer(2, '~~'));
  });
});
