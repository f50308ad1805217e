// Work put off to the end of a turn of the event loop (src/sandbox/turn-end.ts): the first round
// before the second, each in order, everything in one turn's end, work put off meanwhile in the
// next, and a task that throws neither stops the others nor goes unreported.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { atTurnEnd } from '../../src/sandbox/turn-end.ts';
import { ROOT } from '../helpers/guests.ts';

const turnEnds = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test("the first round runs before the second, each in the order put off, all at the turn's end", async () => {
  const ran: string[] = [];
  atTurnEnd(() => ran.push('then 1'), 'then');
  atTurnEnd(() => ran.push('first 1'), 'first');
  atTurnEnd(() => ran.push('then 2'), 'then');
  atTurnEnd(() => ran.push('first 2'), 'first');
  assert.deepEqual(ran, [], 'nothing runs before the turn ends');
  await turnEnds();
  assert.deepEqual(ran, ['first 1', 'first 2', 'then 1', 'then 2']);
});

test('work put off while the turn ends waits for the next turn', async () => {
  const ran: string[] = [];
  atTurnEnd(() => {
    ran.push('a');
    atTurnEnd(() => ran.push('c'), 'first');
  }, 'then');
  await turnEnds();
  assert.deepEqual(ran, ['a']);
  await turnEnds();
  assert.deepEqual(ran, ['a', 'c']);
});

test('a task that throws does not stop the others, and its error ends the process as an uncaught one', () => {
  // In a process of its own: the test runner would take the uncaught error for its own failure.
  const script = `
    import { atTurnEnd } from ${JSON.stringify(new URL('../../src/sandbox/turn-end.ts', import.meta.url).href)};
    atTurnEnd(() => { throw new Error('task failed'); }, 'first');
    atTurnEnd(() => console.log('after it'), 'first');
    atTurnEnd(() => console.log('second round'), 'then');
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', cwd: ROOT });
  assert.equal(r.stdout, 'after it\nsecond round\n');
  assert.match(r.stderr, /Error: task failed/);
  assert.notEqual(r.status, 0);
});
