// The thread's guest budget: a slice of guest time per turn of the event loop, given to waiting
// calls in arrival order while it lasts, and no wait at all while the turn has budget left.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { Turns } from '../../src/sandbox/turns.ts';

const busy = (ms: number): void => {
  const t0 = performance.now();
  while (performance.now() - t0 < ms) { /* the guest's slice */ }
};
const nextImmediate = (): Promise<void> => new Promise((r) => setImmediate(r));

test('a call runs at once while the turn has budget left and nobody waits', () => {
  const turns = new Turns(50);
  assert.equal(turns.take(), undefined);
  assert.equal(turns.charge(() => 7), 7);
  assert.equal(turns.take(), undefined, 'a short run leaves budget');
});

test('past the budget, waiting calls run one per turn, first come first served', async () => {
  const turns = new Turns(1);
  turns.charge(() => busy(2));
  const order: string[] = [];
  const a = turns.take();
  const b = turns.take();
  assert.ok(a && b, 'the budget is spent: both wait');
  void a.then(() => {
    order.push('a');
    turns.charge(() => busy(2));
  });
  void b.then(() => order.push('b'));
  await nextImmediate();
  assert.deepEqual(order, ['a'], 'one waiting call per turn');
  await nextImmediate();
  assert.deepEqual(order, ['a', 'b']);
});

test('waiting calls run one after another in a turn while its budget lasts', async () => {
  const turns = new Turns(50);
  turns.charge(() => busy(60));
  const order: string[] = [];
  const a = turns.take();
  const b = turns.take();
  assert.ok(a && b, 'the budget is spent: both wait');
  void a.then(() => {
    order.push('a');
    turns.charge(() => 0);
  });
  void b.then(() => order.push('b'));
  await nextImmediate();
  assert.deepEqual(order, ['a', 'b'], 'a short slice leaves budget for the next waiting call in the same turn');
});

test('with no slice (Infinity) nothing ever waits', () => {
  const turns = new Turns(Infinity);
  turns.charge(() => busy(3));
  assert.equal(turns.take(), undefined);
});
