// Work put off to the end of this turn of the event loop (one `setImmediate`, after the poll
// phase's I/O callbacks), in two rounds: first what lets answers out (the front's held writes,
// http/turn-writes.ts), then what may wait for them (an instance's reset after its answer,
// program-pool.ts). So an answer made in a turn leaves before that turn's resets: a reset is
// never on an answer's path, though answers are held to leave together.

/** `first` runs before `then`; both in the order they were put off. */
export type TurnEndRound = 'first' | 'then';

let first: Array<() => void> = [];
let then: Array<() => void> = [];
let scheduled = false;

function runAll(tasks: Array<() => void>): void {
  for (const task of tasks) {
    try {
      task();
    } catch (err) {
      // The others still run; the failure is thrown where an immediate's would be.
      queueMicrotask(() => {
        throw err;
      });
    }
  }
}

function endTurn(): void {
  scheduled = false;
  // Taken before running: a task may put off more work, which waits for the next turn's end.
  const now = first;
  const later = then;
  first = [];
  then = [];
  runAll(now);
  runAll(later);
}

/** Runs `task` at the end of this turn of the event loop, in `round`. */
export function atTurnEnd(task: () => void, round: TurnEndRound): void {
  (round === 'first' ? first : then).push(task);
  if (scheduled) return;
  scheduled = true;
  setImmediate(endTurn);
}
