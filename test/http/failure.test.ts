// The one table from a program failure to what an HTTP client sees (src/http/failure.ts): a status
// and a fixed text per class, whatever the failure's own message says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clientFailure, failureStatus } from '../../src/http/failure.ts';
import { QueueFullError, SandboxError, type SandboxFailureKind } from '../../src/sandbox/index.ts';

/** A message full of what a client must never read: guest addresses and the guest's own words. */
const DETAIL = 'page fault at 0xdeadbeef (rip 0x401869, cr2 0xdeadbeef): secret=hunter2';

test('each sandbox failure kind has one status and one fixed text', () => {
  const table: Array<[SandboxFailureKind, number, string]> = [
    ['timeout', 504, 'program timed out\n'],
    ['program', 413, 'request too large for the program\n'],
    ['fault', 502, 'program fault\n'],
    ['out-of-memory', 502, 'program out of memory\n'],
    ['bad-response', 502, 'program sent an invalid response\n'],
    ['internal', 502, 'internal error\n'],
  ];
  for (const [kind, status, body] of table) {
    const err = new SandboxError(kind, DETAIL);
    assert.deepEqual([kind, clientFailure(err).status, clientFailure(err).body], [kind, status, body]);
    assert.equal(failureStatus(err), status);
  }
});

test('a full queue is 503 "program busy", and anything else an internal error', () => {
  assert.deepEqual(clientFailure(new QueueFullError('tenant/p@1', 100)), { class: 'busy', status: 503, body: 'program busy\n' });
  assert.deepEqual(clientFailure(new Error(DETAIL)), { class: 'internal', status: 502, body: 'internal error\n' });
  assert.deepEqual(clientFailure(DETAIL), { class: 'internal', status: 502, body: 'internal error\n' });
});
