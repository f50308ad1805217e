// Answers made in one turn of the event loop leave together, at the turn's end. A write to a peer
// that is asleep costs the writer the peer's wake-up: on loopback the kernel runs the receiving
// side of TCP inside the write and wakes the reader's CPU with an inter-processor interrupt, dear
// in a VM (docs/server.md, "Answers leave together"). Each answer written holds its socket
// (`cork`) until one `setImmediate` lets every held socket go (`uncork`): the answers of a turn's
// poll phase, and the guest calls that run in it, wake a sleeping client once rather than once each.
import type { Socket } from 'node:net';

let held: Socket[] = [];
let scheduled = false;

function release(): void {
  scheduled = false;
  // Taken first: an uncork that drains may write an answer again, which holds for the next turn.
  const sockets = held;
  held = [];
  for (const socket of sockets) socket.uncork();
}

/** Holds `socket`'s writes until the end of this turn of the event loop. */
export function holdUntilTurnEnds(socket: Socket): void {
  socket.cork();
  held.push(socket);
  if (scheduled) return;
  scheduled = true;
  setImmediate(release);
}
