// Answers made in one turn of the event loop leave together, at the turn's end. A write to a peer
// that is asleep costs the writer the peer's wake-up: on loopback the kernel runs the receiving
// side of TCP inside the write and wakes the reader's CPU with an inter-processor interrupt, dear
// in a VM (docs/server.md, "Answers leave together"). Each answer written holds its socket
// (`cork`) until the turn's end lets every held socket go (`uncork`), before the resets put off to
// it (sandbox/turn-end.ts): the answers of a turn's poll phase, and of the guest calls that run in
// it, wake a sleeping client once rather than once each.
import type { Socket } from 'node:net';
import { atTurnEnd } from '../sandbox/index.ts';

let held: Socket[] = [];

function release(): void {
  // Taken first: an uncork that drains may write an answer again, which holds for the next turn.
  const sockets = held;
  held = [];
  for (const socket of sockets) socket.uncork();
}

/** Holds `socket`'s writes until the end of this turn of the event loop. */
export function holdUntilTurnEnds(socket: Socket): void {
  socket.cork();
  if (held.length === 0) atTurnEnd(release, 'first');
  held.push(socket);
}
